"""Load on ``rnnkit serve`` (issue 22): concurrent streaming clients on 127.0.0.1, the limit, and memory.

Starts ``python -m rnnkit serve RUN --max-concurrent N`` in a child process and measures, from asyncio
clients (httpx) on this machine:

1. below the limit: N clients, each streaming ``POST /api/generate`` (SSE) again and again for
   ``--seconds``: failed requests (must be 0), time to first token p50/p95, tokens/s per stream p50/p95,
   and the server's tokens/s over all streams;
2. above the limit: N + ``--extra`` clients for a few seconds: the requests beyond the limit get 429 with
   Retry-After, none fails otherwise;
3. beside a live training (``POST /api/train``, a char LSTM in the server's worker process): phase 1 again
   for ``--train-seconds``, to see that streams stay responsive;
4. memory: the server's resident memory (``/proc/PID/status`` VmRSS) across ``--requests`` requests of every
   kind (streamed and JSON generations, next tokens, classify-less bad requests); it must not grow.

Without ``--run`` the model is the default character LM of ``rnnkit train lm`` (2 x 256 LSTM, embedding
128) over the tiny-Shakespeare characters, untrained: generation costs the same trained or not.

    python benchmarks/serve.py                      # the measurement: 32 clients, 60 s (run it alone)
    python benchmarks/serve.py --quick              # an end-to-end check in ~20 s, writes no results
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import httpx

from common import ROOT, machine, write_results
from rnnkit.data.tokenizers import CharTokenizer
from rnnkit.layers import RecurrentConfig
from rnnkit.models import LanguageModel, LanguageModelConfig, save_model
from rnnkit.tasks.lm import LMDataConfig, default_corpus


def default_run(folder: Path, hidden: int, layers: int, embedding: int) -> Path:
    """An untrained character LM over tiny Shakespeare's characters, saved as an lm run."""
    text = default_corpus().read_text(encoding="utf-8")
    tokenizer = CharTokenizer.build([text])
    rnn = RecurrentConfig("lstm", embedding, hidden, num_layers=layers, batch_first=True)
    model = LanguageModel(LanguageModelConfig(len(tokenizer), embedding, rnn))
    run = folder / "lm"
    save_model(run, model, config={"task": "lm", "data": asdict(LMDataConfig())}, vocab=tokenizer.to_json())
    return run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def stream_once(client: httpx.AsyncClient, body: dict) -> dict:
    """One streamed generation: status, time to first token, tokens and tokens/s of the stream."""
    sent = time.perf_counter()
    first = done = None
    tokens = 0
    try:
        async with client.stream("POST", "/api/generate", json=body, headers={"Accept": "text/event-stream"}) as r:
            if r.status_code != 200:
                await r.aread()
                return {"status": r.status_code, "retry_after": r.headers.get("retry-after")}
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                event = json.loads(line[6:])
                if "token" in event:
                    first = first or time.perf_counter()
                    tokens += 1
                elif event.get("done"):
                    done = time.perf_counter()
                elif "error" in event:
                    return {"status": "error", "error": event["error"]}
    except httpx.HTTPError as error:
        return {"status": "exception", "error": f"{type(error).__name__}: {error}"}
    if first is None or done is None or tokens != body["length"]:
        return {"status": "incomplete", "tokens": tokens}
    return {"status": 200, "ttft": first - sent, "tokens": tokens,
            "tokens_per_s": tokens / (done - first) if done > first else None}  # fmt: skip


async def load(url: str, clients: int, seconds: float, length: int, seed: int) -> dict:
    """``clients`` clients streaming one generation after another for ``seconds``."""
    results: list[dict] = []
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients + 8, max_keepalive_connections=clients + 8)

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def one_client(k: int) -> None:
            n = 0
            while time.perf_counter() < deadline:
                body = {"run": "lm", "length": length, "temperature": 0.8, "seed": seed + 1000 * k + n}
                result = await stream_once(client, body)
                results.append(result)
                n += 1
                if result["status"] == 429:
                    await asyncio.sleep(float(result.get("retry_after") or 1) / 10)  # come back soon, to probe again

        started = time.perf_counter()
        await asyncio.gather(*(one_client(k) for k in range(clients)))
        wall = time.perf_counter() - started
    ok = [r for r in results if r["status"] == 200]
    refused = [r for r in results if r["status"] == 429]
    ttft = [r["ttft"] for r in ok]
    speed = [r["tokens_per_s"] for r in ok if r["tokens_per_s"]]
    failures = [r for r in results if r["status"] not in (200, 429)]
    return {
        "clients": clients, "seconds": round(wall, 1), "requests": len(results), "ok": len(ok),
        "refused_429": len(refused), "refused_with_retry_after": sum(1 for r in refused if r.get("retry_after")),
        "failed": len(failures), "failures": failures[:5],
        "ttft_p50_ms": _ms(percentile(ttft, 0.5)), "ttft_p95_ms": _ms(percentile(ttft, 0.95)),
        "stream_tokens_per_s_p50": _round(percentile(speed, 0.5)),
        "stream_tokens_per_s_p5": _round(percentile(speed, 0.05)),
        "server_tokens_per_s": round(sum(r["tokens"] for r in ok) / wall, 1),
    }  # fmt: skip


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 1)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


async def memory(url: str, pid: int, requests: int, concurrency: int) -> dict:
    """The server's RSS after a warm-up and every 100 requests of a mix of routes."""
    kinds = [
        ("stream", {"run": "lm", "length": 50}),
        ("json", {"run": "lm", "length": 50, "num_samples": 2}),
        ("next", {"run": "lm", "prime": "ROMEO:"}),
        ("bad", {"run": "lm", "temperature": -1}),
        ("bad_prime", {"run": "lm", "prime": "ROMEO€"}),
    ]
    samples: list[tuple[int, float]] = []
    done = 0
    counts: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:

        async def one(i: int) -> None:
            nonlocal done
            kind, body = kinds[i % len(kinds)]
            body = {**body, "seed": i} if kind in ("stream", "json") else body
            if kind == "stream":
                status = (await stream_once(client, body))["status"]
            else:
                path = "/api/next" if kind == "next" else "/api/generate"
                status = (await client.post(path, json=body)).status_code
            counts[f"{kind}:{status}"] = counts.get(f"{kind}:{status}", 0) + 1
            done += 1
            if done % 100 == 0:
                samples.append((done, round(rss_mb(pid), 1)))

        for start in range(0, requests, concurrency):
            await asyncio.gather(*(one(i) for i in range(start, min(requests, start + concurrency))))
    warm = samples[0][1]
    return {"requests": requests, "rss_mb": samples, "rss_after_100_mb": warm, "rss_end_mb": samples[-1][1],
            "growth_after_warmup_mb": round(samples[-1][1] - warm, 1), "statuses": counts}  # fmt: skip


def start_server(run: Path, port: int, max_concurrent: int, save_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(
        [sys.executable, "-m", "rnnkit", "serve", str(run), "--port", str(port), "--max-concurrent",
         str(max_concurrent), "--log-level", "warning", "--save-dir", str(save_dir)], env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise SystemExit(f"the server exited with status {process.returncode}")
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not answer /healthz within 60 s")


def markdown(result: dict) -> str:
    c = result["config"]
    rows = ["| phase | clients | requests | ok | 429 (with Retry-After) | failed | TTFT p50 / p95 ms | "
            "tokens/s per stream p50 / p5 | server tokens/s |", "|---" * 9 + "|"]  # fmt: skip
    for name in ("below_limit", "above_limit", "beside_training"):
        p = result.get(name)
        if p:
            rows.append(f"| {name.replace('_', ' ')} | {p['clients']} | {p['requests']} | {p['ok']} | "
                        f"{p['refused_429']} ({p['refused_with_retry_after']}) | {p['failed']} | "
                        f"{p['ttft_p50_ms']} / {p['ttft_p95_ms']} | {p['stream_tokens_per_s_p50']} / "
                        f"{p['stream_tokens_per_s_p5']} | {p['server_tokens_per_s']} |")  # fmt: skip
    m = result["memory"]
    return "\n".join([
        "# rnnkit serve under load", "",
        f"Machine: {', '.join(f'{k} {v}' for k, v in result['machine'].items())}; server with --threads 1.", "",
        f"Model: {c['model']}; {c['length']} tokens per streamed request; --max-concurrent {c['max_concurrent']}; "
        f"{c['seconds']} s below the limit, {c['above_seconds']} s above it (+{c['extra']} clients), "
        f"{c['train_seconds']} s beside a live training.", "",
        *rows, "",
        f"Memory across {m['requests']} requests (streamed, JSON, next-token, bad): RSS {m['rss_after_100_mb']} MB "
        f"after 100, {m['rss_end_mb']} MB at the end (growth {m['growth_after_warmup_mb']} MB); samples {m['rss_mb']}.",
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="an lm run to serve (default: the default char LM, untrained)")
    parser.add_argument("--clients", type=int, default=32, help="streaming clients below the limit")
    parser.add_argument("--max-concurrent", type=int, default=None, help="the server's limit (default: --clients)")
    parser.add_argument("--extra", type=int, default=8, help="clients beyond the limit in the above-limit phase")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--above-seconds", type=float, default=10.0)
    parser.add_argument("--train-seconds", type=float, default=30.0, help="0: no phase beside a live training")
    parser.add_argument("--length", type=int, default=200, help="tokens per streamed generation")
    parser.add_argument("--requests", type=int, default=1000, help="requests of the memory phase")
    parser.add_argument("--quick", action="store_true", help="a small end-to-end check; writes no results")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.extra, args.seconds, args.above_seconds = 4, 2, 3.0, 2.0
        args.train_seconds, args.length, args.requests = 3.0, 50, 200
    max_concurrent = args.max_concurrent or args.clients
    with tempfile.TemporaryDirectory(prefix="rnnkit-serve-bench-") as tmp:
        tmp = Path(tmp)
        size = (64, 1, 32) if args.quick else (256, 2, 128)
        run = Path(args.run) if args.run else default_run(tmp, *size)
        model = args.run or f"untrained char LSTM {size[0]} x {size[1]}, embedding {size[2]}"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(run, port, max_concurrent, tmp / "saved")
        try:
            result = {"machine": machine("cpu"), "config": {
                "model": model, "length": args.length, "max_concurrent": max_concurrent, "seconds": args.seconds,
                "above_seconds": args.above_seconds, "extra": args.extra, "train_seconds": args.train_seconds,
                "requests": args.requests}}  # fmt: skip
            print(f"below the limit: {args.clients} clients for {args.seconds} s", file=sys.stderr)
            result["below_limit"] = asyncio.run(load(url, args.clients, args.seconds, args.length, 0))
            print(f"above the limit: {max_concurrent + args.extra} clients", file=sys.stderr)
            result["above_limit"] = asyncio.run(load(url, max_concurrent + args.extra, args.above_seconds,
                                                     args.length, 10**6))  # fmt: skip
            if args.train_seconds > 0:
                text = default_corpus().read_text(encoding="utf-8")[:200_000]
                started = httpx.post(url + "/api/train", json={"text": text, "hidden_size": 128,
                                                               "time_budget": args.train_seconds + 60}, timeout=30)
                started.raise_for_status()
                job = started.json()["id"]
                while httpx.get(f"{url}/api/train/{job}").json()["state"] == "starting":
                    time.sleep(0.2)
                print(f"beside a live training: {args.clients} clients for {args.train_seconds} s", file=sys.stderr)
                result["beside_training"] = asyncio.run(load(url, args.clients, args.train_seconds, args.length,
                                                             2 * 10**6))  # fmt: skip
                status = httpx.get(f"{url}/api/train/{job}").json()
                steps = [r["step"] for r in status["events"] if r.get("event") == "train"]
                result["beside_training"]["training_state"] = status["state"]
                result["beside_training"]["training_steps"] = steps[-1] if steps else 0
                httpx.post(f"{url}/api/train/{job}/stop", json={})
            print(f"memory across {args.requests} requests", file=sys.stderr)
            result["memory"] = asyncio.run(memory(url, server.pid, args.requests, 8))
        finally:
            server.terminate()
            server.wait(timeout=30)
    below, above = result["below_limit"], result["above_limit"]
    checks = {
        "no_failed_request_below_the_limit": below["failed"] == 0 and below["refused_429"] == 0 and below["ok"] > 0,
        "429_with_retry_after_above_the_limit": above["refused_429"] > 0 and above["failed"] == 0
        and above["refused_with_retry_after"] == above["refused_429"],
        "memory_does_not_grow": result["memory"]["growth_after_warmup_mb"] < 50,
    }  # fmt: skip
    if "beside_training" in result:
        beside = result["beside_training"]
        checks["no_failed_request_beside_training"] = beside["failed"] == 0 and beside["refused_429"] == 0
    result["checks"] = checks
    text = markdown(result) + "\n\nChecks: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in checks.items())
    print(text)
    if not args.quick:
        write_results("serve", result, text)
    if not all(checks.values()):
        raise SystemExit("a check failed: " + ", ".join(k for k, v in checks.items() if not v))


if __name__ == "__main__":
    main()

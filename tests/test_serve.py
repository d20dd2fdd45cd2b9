"""``rnnkit serve``: the API against the command line on the same runs, its limits and errors, streams that
stop when their client goes away, 429 beyond --max-concurrent, and live training beside serving.

The app runs under uvicorn on 127.0.0.1 in a thread (tests/serve_runs.py), so streams and disconnects
are real HTTP; the runs are tiny ones trained here in a few steps.
"""

import io
import json
import subprocess
import sys
import time
import zipfile

import httpx
import pytest
import torch

from rnnkit.cli import main
from rnnkit.serve import Limits, load_runs
from rnnkit.serve.limits import RequestError
from rnnkit.serve.predict import filtered_probabilities
from serve_runs import LiveServer, build_all, build_corpora, lm_text, serve_app, slow_generation


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    paths = build_all(root)
    paths["corpora"] = build_corpora(root / "c")
    return paths


def make_app(runs, tmp_path, **limits):
    return serve_app(runs, tmp_path / "saved", **limits)


@pytest.fixture(scope="module")
def url(runs, tmp_path_factory):
    with LiveServer(make_app(runs, tmp_path_factory.mktemp("saved"), max_upload_bytes=60_000)) as url:
        yield url


@pytest.fixture
def client(url):
    with httpx.Client(base_url=url, timeout=60) as c:
        yield c


def cli_json(capsys, *argv) -> dict:
    assert main(list(argv)) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def events(response) -> list[dict]:
    return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]


# -- what is served -------------------------------------------------------------------------------


def test_runs_lists_each_served_run_its_task_and_the_limits(client):
    data = client.get("/api/runs").json()
    tasks = {r["name"]: r["task"] for r in data["runs"]}
    assert tasks == {"lm": "lm", "classify": "classify", "tag": "tag", "seq2seq": "seq2seq",
                     "corpora/classifier": "classify", "corpora/sea": "lm", "corpora/farm": "lm"}  # fmt: skip
    info = {r["name"]: r for r in data["runs"]}
    assert info["classify"]["labels"] == ["farm", "sea"]
    assert info["tag"]["types"] == ["LOC", "ORG", "PER"]
    assert info["seq2seq"]["generator"] == "copy" and info["seq2seq"]["attention"] == "luong"
    assert info["corpora/sea"]["corpus"] == "sea" and info["corpora/classifier"]["corpora"] == "corpora"
    assert data["corpora"][0]["generators"] == {"sea": "corpora/sea", "farm": "corpora/farm"}
    assert data["limits"]["max_length"] == Limits().max_length
    assert client.get("/healthz").json()["status"] == "ok"
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")


@pytest.mark.parametrize("path", ["/static/../runs.py", "/static/index.html", "/../../etc/passwd", "/static/x.js"])
def test_no_request_path_reaches_the_file_system(client, path):
    response = client.get(path)
    assert response.status_code == 404 and "no such route" in response.json()["error"]


def test_a_run_is_found_by_its_name_only(client, runs):
    for name in (str(runs["lm"]), "../lm", "lm/"):
        response = client.post("/api/generate", json={"run": name, "length": 3})
        assert response.status_code == 404 and response.json()["field"] == "run", name


# -- generate -------------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [
    {"prime": "wave ", "temperature": 0.8, "seed": 7, "length": 60},
    {"temperature": 1.3, "top_k": 5, "seed": 3, "length": 40},
    {"prime": "cow", "top_p": 0.9, "seed": 11, "length": 30, "num_samples": 3},
])  # fmt: skip
def test_same_seed_same_text_as_rnnkit_sample(client, runs, capsys, options):
    argv = ["sample", str(runs["lm"]), "--json"]
    for key, value in options.items():
        argv += ["--" + key.replace("_", "-"), str(value)]
    expected = cli_json(capsys, *argv)["samples"]
    reply = client.post("/api/generate", json={"run": "lm", **options}).json()
    assert reply["samples"] == expected and reply["seed"] == options["seed"]
    with client.stream("POST", "/api/generate", json={"run": "lm", **options},
                       headers={"Accept": "text/event-stream"}) as response:  # fmt: skip
        assert response.headers["content-type"].startswith("text/event-stream")
        got = events(response)
    *tokens, done = got
    n = options.get("num_samples", 1)
    assert len(tokens) == options["length"] * n and done["done"] is True and done["tokens"] == options["length"] * n
    assert done["tokens_per_s"] > 0 and done["samples"] == expected
    streamed = ["".join(e["token"] for e in tokens if e.get("sample", 0) == i) for i in range(n)]
    assert [options.get("prime", "") + s for s in streamed] == expected


def test_without_a_seed_the_reply_names_the_seed_that_writes_it_again(client, runs, capsys):
    first = client.post("/api/generate", json={"run": "lm", "length": 40, "prime": "hay"}).json()
    again = cli_json(capsys, "sample", str(runs["lm"]), "--length", "40", "--prime", "hay", "--seed",
                     str(first["seed"]), "--json")  # fmt: skip
    assert again["samples"] == first["samples"]


def test_next_tokens_are_the_sampling_distribution(client, runs):
    from rnnkit.models import load_model
    from rnnkit.tasks.lm import encode_prime, load_tokenizer

    model, tokenizer = load_model(runs["lm"]).eval(), load_tokenizer(runs["lm"])
    with torch.no_grad():
        logits = model(torch.tensor([encode_prime(tokenizer, "wave s")]))[0][0, -1]
    reply = client.post("/api/next", json={"run": "lm", "prime": "wave s", "temperature": 0.7}).json()
    expected = (logits / 0.7).softmax(-1)
    assert len(reply["candidates"]) == 10
    top = torch.topk(expected, 10)
    assert [c["id"] for c in reply["candidates"]] == top.indices.tolist()
    assert [c["probability"] for c in reply["candidates"]] == pytest.approx(top.values.tolist(), abs=1e-6)
    assert [c["token"] for c in reply["candidates"]] == [tokenizer.decode([i]) for i in top.indices.tolist()]
    k3 = client.post("/api/next", json={"run": "lm", "prime": "wave s", "top_k": 3}).json()["candidates"]
    best3 = logits.softmax(-1).topk(3).values
    assert [c["probability"] for c in k3] == pytest.approx((best3 / best3.sum()).tolist(), abs=1e-5)


def test_the_filtered_distribution_is_what_sample_logits_draws_from():
    from rnnkit.decoding import sample_logits

    logits = torch.randn(40, generator=torch.Generator().manual_seed(0)) * 2
    for top_k, top_p in ((None, None), (5, None), (None, 0.6), (8, 0.7)):
        probs = filtered_probabilities(logits, 0.9, top_k, top_p)
        draws = sample_logits(logits.expand(4000, -1), 0.9, top_k, top_p, torch.Generator().manual_seed(1))
        freq = torch.bincount(draws, minlength=40).float() / 4000
        assert set(torch.nonzero(freq).flatten().tolist()) <= set(torch.nonzero(probs).flatten().tolist())
        assert (freq - probs).abs().max() < 0.03, (top_k, top_p)


# -- classify, tag, seq2seq, corpora --------------------------------------------------------------


def test_classify_gives_the_probabilities_of_rnnkit_predict(client, runs, capsys):
    text = "wave ship salt tide harbour gull"
    expected = cli_json(capsys, "predict", str(runs["classify"]), "--text", text, "--json")["predictions"][0]
    got = client.post("/api/classify", json={"run": "classify", "text": text}).json()["predictions"][0]
    assert got["label"] == expected["label"]
    assert got["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)
    both = client.post("/api/classify", json={"run": "classify", "texts": [text, "cow barn hay"]}).json()
    assert [p["text"] for p in both["predictions"]] == [text, "cow barn hay"]


def test_tag_gives_the_entities_of_rnnkit_predict_at_their_characters(client, runs, capsys):
    lines = ["Mary Smith visited New York .", "Karl joined the United Nations ."]
    text = "\n\n".join(lines)
    path = runs["tag"].parent / "tag-input.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected = cli_json(capsys, "predict", str(runs["tag"]), "--file", str(path), "--json")["predictions"]
    got = client.post("/api/tag", json={"run": "tag", "text": text}).json()
    assert [s["tags"] for s in got["sentences"]] == [p["tags"] for p in expected]
    for sentence, prediction in zip(got["sentences"], expected):
        plain = [{k: e[k] for k in ("type", "start", "end", "text")} for e in sentence["entities"]]
        assert plain == prediction["entities"]
        for e in sentence["entities"]:
            assert text[e["char_start"] : e["char_end"]] == e["text"]
        for word, (a, b) in zip(sentence["tokens"], sentence["offsets"]):
            assert text[a:b] == word
    assert any(s["entities"] for s in got["sentences"])


def test_seq2seq_gives_the_output_of_rnnkit_predict_and_a_weight_per_step_and_input(client, runs, capsys):
    expected = cli_json(capsys, "predict", str(runs["seq2seq"]), "--input", "31415", "--json")["predictions"][0]
    got = client.post("/api/seq2seq", json={"run": "seq2seq", "input": "31415"}).json()
    assert got["output"] == expected["output"] and got["finished"] == expected["finished"]
    assert got["log_prob"] == pytest.approx(expected["log_prob"], abs=1e-5)
    attention = torch.tensor(got["attention"])
    assert attention.shape == (len(got["output_tokens"]), 5) and got["input_tokens"] == list("31415")
    assert torch.allclose(attention.sum(-1), torch.ones(len(attention)), atol=1e-5)


def test_the_corpora_passages_are_assigned_as_rnnkit_corpora_assigns_them(client, runs):
    from rnnkit.apps.corpora import CorporaConfig, classify_passages
    from rnnkit.config import config_from_dict
    from rnnkit.decoding import generate
    from rnnkit.models import load_model
    from rnnkit.tasks.lm import load_tokenizer

    got = client.post("/api/corpora", json={"per_corpus": 2, "seed": 5}).json()
    assert [p["corpus"] for p in got["passages"]] == ["farm", "farm", "sea", "sea"]  # the classifier's label order
    config = config_from_dict(CorporaConfig, json.loads((runs["corpora"] / "corpora.json").read_text()))
    passages = []
    for c, name in enumerate(["farm", "sea"]):  # what the server generates, made here from the runs' files
        run = runs["corpora"] / "generators" / name
        model, tokenizer = load_model(run), load_tokenizer(run)
        ids = generate(model.embedding, model.rnn, model.head, config.window * 10, prime=[tokenizer.index["\n"]],
                       temperature=config.temperature, num_samples=2, seed=5 + c)  # fmt: skip
        passages += [{"generator": "per_corpus", "corpus": name, "text": tokenizer.decode(r)} for r in ids.tolist()]
    classify_passages(config, ["farm", "sea"], passages, "cpu")
    assert [p["assigned"] for p in got["passages"]] == [p["predicted"] for p in passages]
    assert [p["text"] for p in got["passages"]] == [p["tokens"] for p in passages]
    for mine, theirs in zip(got["passages"], passages):
        assert mine["probabilities"] == pytest.approx(theirs["probabilities"], abs=1e-6)
    assert got["own_corpus_share"] == sum(p["assigned"] == p["corpus"] for p in got["passages"]) / 4


# -- bad requests ---------------------------------------------------------------------------------

BAD = [
    ("/api/generate", {"run": "missing"}, 404, "run", "unknown run 'missing'; served: classify"),
    ("/api/generate", b'{"run": "lm", ', 400, "body", "malformed JSON"),
    ("/api/generate", b"[1, 2]", 400, "body", "must be a JSON object"),
    ("/api/generate", b"", 400, "body", "empty"),
    ("/api/generate", {"run": "lm", "temperature": 0}, 400, "temperature", "temperature must be > 0"),
    ("/api/generate", {"run": "lm", "temperature": -1}, 400, "temperature", "temperature must be > 0"),
    ("/api/generate", b'{"run": "lm", "temperature": NaN}', 400, "temperature", "finite number, got NaN"),
    ("/api/generate", b'{"run": "lm", "temperature": Infinity}', 400, "temperature", "got Infinity"),
    ("/api/generate", {"run": "lm", "temperature": "hot"}, 400, "temperature", 'got "hot"'),
    ("/api/generate", {"run": "lm", "top_p": 0}, 400, "top_p", "top_p must be in (0.0, 1.0]"),
    ("/api/generate", {"run": "lm", "top_p": 1.5}, 400, "top_p", "top_p must be in (0.0, 1.0]"),
    ("/api/generate", {"run": "lm", "top_k": 0}, 400, "top_k", "top_k must be >= 1"),
    ("/api/generate", {"run": "lm", "top_k": True}, 400, "top_k", "must be an integer"),
    ("/api/generate", {"run": "lm", "prime": "wave Zß!"}, 400, "prime",
     "3 characters not in the model's vocabulary: '!' (U+0021), 'Z' (U+005A), 'ß' (U+00DF)"),
    ("/api/generate", {"run": "lm", "prime": "a" * 2001}, 413, "prime", "2001 characters; the limit is 2000"),
    ("/api/generate", {"run": "lm", "length": 2001}, 400, "length", "length must be an integer in [1, 2000]"),
    ("/api/generate", {"run": "lm", "length": 0}, 400, "length", "in [1, 2000], got 0"),
    ("/api/generate", {"run": "lm", "num_samples": 9}, 400, "num_samples", "in [1, 8], got 9"),
    ("/api/generate", {"run": "lm", "seed": -1}, 400, "seed", "seed must be"),
    ("/api/generate", {"run": "lm", "temprature": 1}, 400, "temprature", "unknown field 'temprature'"),
    ("/api/generate", {"run": "classify"}, 400, "run", "'classify' run; /api/generate needs a 'lm' run"),
    ("/api/generate", {"run": "lm", "prime": "x" * 70_000}, 413, "body", "the limit is 65536"),
    ("/api/next", {"run": "lm", "prime": "Q"}, 400, "prime", "'Q' (U+0051)"),
    ("/api/next", {"run": "lm", "count": 51}, 400, "count", "in [1, 50]"),
    ("/api/classify", {"run": "classify"}, 400, "text", "give one of text"),
    ("/api/classify", {"run": "classify", "text": "  "}, 400, "text", "text is empty"),
    ("/api/classify", {"run": "classify", "texts": ["a"] * 17}, 413, "texts", "1 to 16 texts, got 17"),
    ("/api/classify", {"run": "classify", "text": "x" * 5001}, 413, "text", "the limit is 5000"),
    ("/api/classify", {"run": "tag", "text": "x"}, 400, "run", "/api/classify needs a 'classify' run"),
    ("/api/tag", {"run": "tag"}, 400, "text", "text is required"),
    ("/api/tag", {"run": "tag", "text": " \n "}, 400, "text", "text is empty"),
    ("/api/seq2seq", {"run": "seq2seq", "input": "12a4"}, 400, "input", "character 'a' is not in the model's"),
    ("/api/seq2seq", {"run": "seq2seq", "input": "1" * 9}, 400, "input", "inputs of at most 5"),
    ("/api/corpora", {"corpora": "other"}, 404, "corpora", "unknown corpora set 'other'"),
    ("/api/train", {"text": "tiny"}, 400, "text", "live training needs at least 500"),
    ("/api/train", {"text": "x" * 600, "hidden_size": 257}, 400, "hidden_size", "in [1, 256]"),
    ("/api/train", {"text": "x" * 600, "cell": "transformer"}, 400, "cell", "cell must be lstm, gru or rnn"),
    ("/api/train", {"text": "x" * 600, "time_budget": 301}, 400, "time_budget", "time_budget must be <= 300.0"),
    ("/api/train", {"text": "a\x00b" * 300}, 415, "text", "binary"),
    ("/api/train", {"text": "é" * 40_000}, 413, "text", "80000 bytes of UTF-8; the limit is 60000"),
    ("/api/train/nope", None, 404, "id", "no live training 'nope'"),
    ("/api/train/nope/pause", {}, 404, "id", "no live training"),
]  # fmt: skip


@pytest.mark.parametrize("route, body, status, field, message", BAD, ids=[f"{b[0]}:{b[3]}:{b[2]}" for b in BAD])
def test_every_bad_request_is_a_4xx_naming_the_field(client, route, body, status, field, message):
    if body is None:
        response = client.get(route)
    elif isinstance(body, bytes):
        response = client.post(route, content=body, headers={"Content-Type": "application/json"})
    else:
        response = client.post(route, json=body)
    assert response.status_code == status, response.text
    data = response.json()
    assert data["field"] == field and message in data["error"], data
    assert client.get("/healthz").json()["status"] == "ok"  # and the server keeps serving


def test_uploads_that_are_binary_or_too_large_are_refused(client):
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
    response = client.post("/api/train", content=png, headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 415 and "binary" in response.json()["error"]
    latin1 = ("caf\xe9 " * 200).encode("latin-1")
    response = client.post("/api/train", content=latin1, headers={"Content-Type": "text/plain"})
    assert response.status_code == 415 and "not UTF-8 text (byte 3)" in response.json()["error"]
    big = b"word " * 13_000
    response = client.post("/api/train", content=big, headers={"Content-Type": "text/plain"})
    assert response.status_code == 413 and "65000 bytes; the limit is 60000" in response.json()["error"]
    response = client.post("/api/train?hidden_size=zero", content=b"word " * 200,
                           headers={"Content-Type": "text/plain"})  # fmt: skip
    assert response.status_code == 400 and response.json()["field"] == "hidden_size"


def test_unknown_routes_and_methods_are_json_errors(client):
    assert client.get("/api/nothing").json() == {"error": "no such route: GET /api/nothing"}
    response = client.get("/api/generate")
    assert response.status_code == 405 and response.json() == {"error": "method not allowed"}


# -- streams, disconnects and the concurrency limit -----------------------------------------------


def wait_for(condition, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_a_client_that_disconnects_stops_its_generation_at_once(client, monkeypatch):
    seen = slow_generation(monkeypatch)  # 2000 tokens would take 10 s
    before = client.get("/healthz").json()["generations"]
    with client.stream("POST", "/api/generate", json={"run": "lm", "length": 2000},
                       headers={"Accept": "text/event-stream"}) as response:  # fmt: skip
        tokens = []
        for line in response.iter_lines():
            if line.startswith("data: "):
                tokens.append(json.loads(line[6:]))
                if len(tokens) == 3:
                    break
    wait_for(lambda: seen["closed"] == 1, timeout=3, what="the generation to be closed")
    stopped_at = seen["yielded"]
    time.sleep(0.2)
    assert seen["yielded"] == stopped_at < 200  # nothing sampled after the close
    after = client.get("/healthz").json()["generations"]
    assert after["active"] == 0 and after["stopped"] == before["stopped"] + 1


def test_beyond_max_concurrent_is_429_with_retry_after_and_others_are_served(runs, tmp_path, monkeypatch):
    slow_generation(monkeypatch)
    with LiveServer(make_app(runs, tmp_path, max_concurrent=2)) as url, httpx.Client(base_url=url, timeout=30) as c:
        streams = []
        for _ in range(2):
            request = c.build_request("POST", "/api/generate", json={"run": "lm", "length": 2000},
                                      headers={"Accept": "text/event-stream"})  # fmt: skip
            response = c.send(request, stream=True)
            assert response.status_code == 200
            lines = response.iter_lines()  # kept: a line iterator that is collected closes its connection
            next(line for line in lines if line.startswith("data: "))  # it has started
            streams.append((response, lines))
        refused = httpx.post(url + "/api/generate", json={"run": "lm", "length": 5})
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
        assert "running 2 generations, its limit" in refused.json()["error"]
        assert httpx.post(url + "/api/classify", json={"run": "classify", "text": "wave"}).status_code == 200
        streams.pop()[0].close()
        wait_for(lambda: c.get("/healthz").json()["generations"]["active"] == 1, what="a slot to free")
        assert httpx.post(url + "/api/generate", json={"run": "lm", "length": 5}).status_code == 200
        streams.pop()[0].close()
        assert c.get("/healthz").json()["generations"]["refused"] == 1


# -- live training --------------------------------------------------------------------------------


def follow(client, job_id: str, until=None, timeout: float = 120.0) -> list[dict]:
    """The job's records as its stream sends them, until ``until(records)`` or the stream ends."""
    records = []
    with client.stream("GET", f"/api/train/{job_id}", headers={"Accept": "text/event-stream"},
                       timeout=timeout) as response:  # fmt: skip
        for line in response.iter_lines():
            if line.startswith("data: "):
                records.append(json.loads(line[6:]))
                if until is not None and until(records):
                    break
    return records


def test_live_training_lowers_the_loss_samples_after_each_evaluation_and_saves_a_run(client, capsys):
    text = lm_text(seed=2, lines=400)
    started = client.post("/api/train", json={"text": text, "hidden_size": 32, "embedding_size": 16, "seq_len": 32,
                                              "batch_size": 8, "max_steps": 90, "eval_every": 30, "log_every": 5,
                                              "sample_length": 40})  # fmt: skip
    assert started.status_code == 201, started.text
    job = started.json()["id"]
    second = client.post("/api/train", json={"text": text})
    assert second.status_code == 429 and "already running" in second.json()["error"]
    # serving goes on while it trains: a whole stream, and a bad request
    with client.stream("POST", "/api/generate", json={"run": "lm", "length": 300},
                       headers={"Accept": "text/event-stream"}) as response:  # fmt: skip
        assert events(response)[-1]["done"] is True
    records = follow(client, job)
    assert records[-1]["done"] is True and records[-1]["state"] == "finished", records[-3:]
    train = [r for r in records if r.get("event") == "train"]
    valid = [r for r in records if r.get("event") == "valid"]
    assert len(train) >= 15 and train[-1]["loss"] < train[0]["loss"] - 0.3
    assert [r["step"] for r in valid] == [30, 60, 90] and all(len(r["sample"]) == 40 for r in valid)
    status = client.get(f"/api/train/{job}").json()
    assert status["state"] == "finished" and len(status["events"]) == len(records) - 1
    saved = client.post(f"/api/train/{job}/save", json={}).json()
    from pathlib import Path

    run = Path(saved["saved"])
    assert run.name == f"live-{job}" and (run / "text.txt").read_text(encoding="utf-8") == text
    assert json.loads((run / "config.json").read_text())["data"]["data"] == str(run / "text.txt")
    sample = cli_json(capsys, "sample", str(run), "--length", "20", "--seed", "1", "--json")
    assert len(sample["samples"][0]) == 20
    archive = zipfile.ZipFile(io.BytesIO(client.get(saved["download"]).content))
    assert {"config.json", "model.safetensors", "vocab.json", "text.txt"} <= {Path(n).name for n in archive.namelist()}


def test_pause_holds_training_and_resume_continues_it(client):
    text = lm_text(seed=3, lines=200)
    upload = client.post("/api/train?hidden_size=16&embedding_size=8&seq_len=16&batch_size=4&eval_every=1000"
                         "&log_every=2&time_budget=120", content=text.encode(), headers={"Content-Type": "text/plain"})
    assert upload.status_code == 201, upload.text
    job = upload.json()["id"]
    follow(client, job, until=lambda rs: any(r.get("event") == "train" for r in rs))
    assert client.post(f"/api/train/{job}/pause", json={}).status_code == 200
    wait_for(lambda: client.get(f"/api/train/{job}").json()["state"] == "paused", what="the pause")
    held = len(client.get(f"/api/train/{job}").json()["events"])
    time.sleep(0.5)
    assert len(client.get(f"/api/train/{job}").json()["events"]) == held
    client.post(f"/api/train/{job}/resume", json={})
    records = follow(client, job, until=lambda rs: sum(r.get("event") == "train" for r in rs[held:]) >= 2)
    paused_at = next(r["step"] for r in records if r.get("state") == "paused")
    assert [r["step"] for r in records[held:] if r.get("event") == "train"][-1] > paused_at
    client.post(f"/api/train/{job}/stop", json={})
    records = follow(client, job)
    assert records[-1]["state"] == "stopped" and records[-2]["state"] == "stopped"
    assert any(r.get("event") == "valid" and r["sample"] for r in records)  # the stop evaluates once more
    again = client.post(f"/api/train/{job}/resume", json={})
    assert again.status_code == 409 and "it can only be saved" in again.json()["error"]


# -- the command ----------------------------------------------------------------------------------


def test_the_command_reports_a_bad_run_in_one_line(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: ") and "does not exist" in err and err.count("\n") == 1
    assert main(["serve", str(tmp_path), "--max-concurrent", "0"]) == 2
    assert "--max-concurrent must be >= 1" in capsys.readouterr().err


def test_a_run_of_another_task_is_refused_at_start(tmp_path):
    from rnnkit import checkpoint

    (tmp_path / "f").mkdir()
    checkpoint.write_json(tmp_path / "f" / "config.json", {"format": "rnnkit-run", "version": 1, "task": "forecast"})
    with pytest.raises(Exception, match="is a 'forecast' run; rnnkit serve shows lm, classify, tag, seq2seq"):
        load_runs([tmp_path / "f"])


def test_rnnkit_help_does_not_import_the_web_server():
    code = ("import sys, rnnkit.cli; rnnkit.cli.build_parser(); "
            "print(sorted({'uvicorn', 'starlette'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="max_concurrent must be a number > 0"):
        Limits(max_concurrent=0)
    assert RequestError("x", field="f", status=413).body() == {"error": "x", "field": "f"}

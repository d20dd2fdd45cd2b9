"""The ASGI app of ``rnnkit serve``: the page, the JSON API, the limits, and the live-training worker.

Routes (docs/serve.md documents each with its fields and replies)::

    GET  /                       the page (static/: plain HTML, JS and CSS shipped in the package)
    GET  /healthz                {"status": "ok", ...} with the generation and training counters
    GET  /api/runs               the served runs, the 4-corpus systems among them, and the limits
    POST /api/generate           sample text; Accept: text/event-stream streams {"token": ...} events
    POST /api/next               the 10 most probable next tokens (the page's "pick the next token")
    POST /api/classify           label probabilities of texts
    POST /api/tag                tags and entities of each line of a text
    POST /api/seq2seq            the decoded output and its attention weights
    POST /api/corpora            new passages of each corpus's generator and the corpus each is assigned to
    POST /api/train              start a live training on text (JSON, or the raw text of an upload)
    GET  /api/train/{id}         its records (Accept: text/event-stream follows them as they come)
    POST /api/train/{id}/{pause|resume|stop|save};  GET /api/train/{id}/download  (the saved run, zipped)

The event loop only parses, checks and sends: every model call runs in a worker thread (a capacity
limiter bounds them), live training runs in its own process. Every bad request is a 4xx with
``{"error": "...", "field": ...}``; beyond ``max_concurrent`` generations it is 429 with Retry-After.
"""

from __future__ import annotations

import io
import logging
import shutil
import tempfile
import zipfile
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rnnkit.errors import RnnkitError
from rnnkit.serve import predict
from rnnkit.serve.generation import GenerateOptions, Generation, Slots
from rnnkit.serve.limits import Fields, Limits, RequestError, check_text_upload, parse_json
from rnnkit.serve.runs import Runs, ServedRun
from rnnkit.serve.streaming import EventStream
from rnnkit.serve.training import Trainings, training_config

log = logging.getLogger("rnnkit.serve")
STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/static/style.css": ("style.css", "text/css; charset=utf-8")}  # fmt: skip
ROUTE_TASK = {"generate": "lm", "next": "lm", "classify": "classify", "tag": "tag", "seq2seq": "seq2seq"}


def _static_files() -> dict[str, tuple[bytes, str]]:
    """The page's files, read once from the package: request paths are looked up here, never on disk."""
    folder = resources.files("rnnkit.serve") / "static"
    return {path: ((folder / name).read_bytes(), kind) for path, (name, kind) in STATIC.items()}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes (declared or sent)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(f"the request body has {declared} bytes; the limit is {limit}", field="body", status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"the request body is over the limit of {limit} bytes", field="body", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def wants_events(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


class Server:
    """The state behind the routes: the runs, the limits, the generation slots, the trainings."""

    def __init__(self, runs: Runs, limits: Limits, work_dir: Path | None, save_dir: Path) -> None:
        self.runs, self.limits = runs, limits
        self.slots = Slots(limits.max_concurrent)
        # threads for model calls: every generation slot plus a few for classify/tag/seq2seq
        self.limiter = anyio.CapacityLimiter(limits.max_concurrent + 4)
        self.own_work_dir = work_dir is None
        self.work_dir = Path(tempfile.mkdtemp(prefix="rnnkit-serve-")) if work_dir is None else Path(work_dir)
        self.trainings = Trainings(limits, self.work_dir, Path(save_dir))
        self.static = _static_files()

    def close(self) -> None:
        self.trainings.shutdown()
        if self.own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    async def compute(self, fn, *args):
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    def run_of(self, fields: Fields, route: str) -> ServedRun:
        name = fields.string("run", required=True)
        run = self.runs.get(name)
        if run is None:
            served = ", ".join(sorted(self.runs.by_name)) or "none"
            raise RequestError(f"unknown run {name!r}; served: {served}", field="run", status=404)
        need = ROUTE_TASK[route]
        if run.task != need:
            raise RequestError(f"run {name!r} is a {run.task!r} run; /api/{route} needs a {need!r} run", field="run")
        return run

    async def fields(self, request: Request) -> Fields:
        return Fields(parse_json(await read_body(request, self.limits.max_body_bytes)))

    def sampling(self, f: Fields) -> tuple[float, int | None, float | None]:
        temperature = f.number("temperature", default=1.0, positive=True)
        top_k = f.integer("top_k", low=1)
        top_p = f.number("top_p", low=0.0, high=1.0, low_open=True)
        return temperature, top_k, top_p

    # -- routes -----------------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        body, kind = self.static[request.url.path]
        return Response(body, media_type=kind, headers={"Cache-Control": "no-cache"})

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "runs": len(self.runs), "generations": self.slots.stats(),
                             "trainings": self.trainings.running()})  # fmt: skip

    async def list_runs(self, request: Request) -> Response:
        corpora = [{"name": c.name, "classifier": c.classifier, "generators": c.generators, "window": c.window,
                    "report": c.report, "passages": list(c.passages)} for c in self.runs.corpora.values()]  # fmt: skip
        return JSONResponse({"runs": [r.info for r in self.runs], "corpora": corpora, "limits": self.limits.public()})

    async def generate(self, request: Request) -> Response:
        f, L = await self.fields(request), self.limits
        run = self.run_of(f, "generate")
        temperature, top_k, top_p = self.sampling(f)
        options = GenerateOptions(
            prime=f.string("prime", max_chars=L.max_prime_chars) or None, temperature=temperature, top_k=top_k,
            top_p=top_p, length=f.integer("length", default=200, low=1, high=L.max_length),
            seed=f.integer("seed", low=0, high=2**62), num_samples=f.integer("num_samples", default=1, low=1,
                                                                               high=L.max_samples),
        )  # fmt: skip
        f.done()
        generation = Generation(run, options)  # checks the prime; samples nothing yet
        if not self.slots.acquire():
            generation.close()
            raise RequestError(f"the server is running {L.max_concurrent} generations, its limit; retry in "
                               f"{L.retry_after_s} s", status=429,
                               headers={"Retry-After": str(L.retry_after_s)})  # fmt: skip
        if wants_events(request):
            return EventStream(self._stream(generation))
        completed = False
        try:
            while await self.compute(generation.take, 256, 0.05):
                if await request.is_disconnected():
                    return Response(status_code=499)
            completed = True
        finally:
            generation.close()
            self.slots.release(completed=completed)
        return JSONResponse({"run": run.name, "samples": generation.samples(), **generation.summary()})

    async def _stream(self, generation: Generation):
        completed = False
        several = generation.options.num_samples > 1
        try:
            while steps := await self.compute(generation.take):
                events = []
                for step in steps:
                    pieces = generation.pieces(step)
                    events += [{"token": p, "sample": i} for i, p in enumerate(pieces)] if several else [
                        {"token": pieces[0]}]  # fmt: skip
                yield events
            completed = True
            yield [{"done": True, **generation.summary(), "samples": generation.samples()}]
        except (RnnkitError, ValueError) as error:
            yield [{"error": str(error)}]
        finally:
            generation.close()
            self.slots.release(completed=completed)

    async def next_token(self, request: Request) -> Response:
        f = await self.fields(request)
        run = self.run_of(f, "next")
        prime = f.string("prime", max_chars=self.limits.max_prime_chars)
        temperature, top_k, top_p = self.sampling(f)
        count = f.integer("count", default=10, low=1, high=50)
        f.done()
        result = await self.compute(lambda: predict.next_tokens(run, prime, temperature=temperature, top_k=top_k,
                                                                top_p=top_p, count=count))  # fmt: skip
        return JSONResponse(result)

    async def classify(self, request: Request) -> Response:
        f, L = await self.fields(request), self.limits
        run = self.run_of(f, "classify")
        text = f.string("text", max_chars=L.max_input_chars)
        texts = f.strings("texts", max_items=L.max_texts, max_chars=L.max_input_chars)
        f.done()
        if (text is None) == (texts is None):
            raise RequestError("give one of text (a string) or texts (a list of strings)", field="text")
        texts = texts or [text]
        if any(not t.strip() for t in texts):
            raise RequestError("text is empty", field="text")
        return JSONResponse(await self.compute(predict.classify, run, texts))

    async def tag(self, request: Request) -> Response:
        return await self._one_text(request, "tag", "text", predict.tag)

    async def seq2seq(self, request: Request) -> Response:
        return await self._one_text(request, "seq2seq", "input", predict.seq2seq)

    async def _one_text(self, request: Request, task: str, field: str, fn) -> Response:
        """A request of a ``task`` run and one non-blank text in ``field``, answered with ``fn(run, text)``."""
        f = await self.fields(request)
        run = self.run_of(f, task)
        text = f.string(field, required=True, nonblank=True, max_chars=self.limits.max_input_chars)
        f.done()
        return JSONResponse(await self.compute(fn, run, text))

    async def corpora(self, request: Request) -> Response:
        f = await self.fields(request)
        names = sorted(self.runs.corpora)
        name = f.string("corpora", default=names[0] if len(names) == 1 else None)
        per_corpus = f.integer("per_corpus", default=2, low=1, high=self.limits.max_samples)
        seed = f.integer("seed", default=0, low=0, high=2**62)
        f.done()
        if name not in self.runs.corpora:
            raise RequestError(f"unknown corpora set {name!r}; served: {', '.join(names) or 'none'}", field="corpora",
                               status=404)  # fmt: skip
        if not self.slots.acquire():  # it generates, so it takes a generation slot
            raise RequestError("the server is at its generation limit; retry", status=429,
                               headers={"Retry-After": str(self.limits.retry_after_s)})  # fmt: skip
        try:
            result = await self.compute(predict.corpora_passages, self.runs, self.runs.corpora[name], per_corpus, seed)
        finally:
            self.slots.release(completed=True)
        return JSONResponse(result)

    # -- live training ----------------------------------------------------------------------------

    async def train(self, request: Request) -> Response:
        L = self.limits
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "application/json":
            f = Fields(parse_json(await read_body(request, 2 * L.max_upload_bytes + L.max_body_bytes)))
            text = f.string("text", required=True)
            if len(text.encode("utf-8")) > L.max_upload_bytes:
                raise RequestError(f"text has {len(text.encode('utf-8'))} bytes of UTF-8; the limit is "
                                   f"{L.max_upload_bytes}", field="text", status=413)  # fmt: skip
            if "\x00" in text:
                raise RequestError("text looks binary (it has a NUL character); send UTF-8 text", field="text",
                                   status=415)  # fmt: skip
        else:  # an upload: the file's bytes as the body, the options in the query string
            text = check_text_upload(await read_body(request, L.max_upload_bytes), L.max_upload_bytes)
            f = Fields({k: _query_value(v) for k, v in request.query_params.items()})
        config = training_config(f, L)
        f.done()
        if len(text) < L.min_train_chars:
            raise RequestError(f"text has {len(text)} characters; live training needs at least {L.min_train_chars}",
                               field="text")  # fmt: skip
        job = await anyio.to_thread.run_sync(self.trainings.start, text, config)
        if job is None:
            raise RequestError(f"{L.max_trainings} live training(s) already running, the limit; stop one or retry",
                               status=429, headers={"Retry-After": "10"})  # fmt: skip
        return JSONResponse({**job.status(), "url": f"/api/train/{job.id}"}, status_code=201)

    def job_of(self, request: Request):
        job = self.trainings.get(request.path_params["id"])
        if job is None:
            raise RequestError(f"no live training {request.path_params['id']!r}", field="id", status=404)
        return job

    async def train_status(self, request: Request) -> Response:
        job = self.job_of(request)
        if not wants_events(request):
            return JSONResponse({**job.status(), "events": list(job.records)})

        async def follow():
            sent = 0
            while True:
                records = job.records[sent:]
                sent += len(records)
                if records:
                    yield records
                if job.done and sent == len(job.records):
                    yield [{"done": True, **job.status()}]
                    return
                await anyio.sleep(0.2)

        return EventStream(follow())

    async def train_action(self, request: Request) -> Response:
        job, action = self.job_of(request), request.path_params["action"]
        if action not in ("pause", "resume", "stop", "save"):
            raise RequestError(f"unknown action {action!r}; use pause, resume, stop or save", field="action",
                               status=404)  # fmt: skip
        if action == "save":
            path = await anyio.to_thread.run_sync(self.trainings.save, job)
            return JSONResponse({**job.status(), "saved": path, "download": f"/api/train/{job.id}/download"})
        if job.done:
            raise RequestError(f"training {job.id} has {job.state}; it can only be saved", field="id", status=409)
        job.send(action)
        return JSONResponse(job.status())

    async def train_download(self, request: Request) -> Response:
        job = self.job_of(request)
        if job.saved is None:
            raise RequestError("save the training first (POST /api/train/ID/save)", field="id", status=409)

        def pack() -> bytes:
            buffer = io.BytesIO()
            root = Path(job.saved)
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for file in sorted(root.iterdir()):
                    archive.write(file, f"{root.name}/{file.name}")
            return buffer.getvalue()

        body = await anyio.to_thread.run_sync(pack)
        return Response(body, media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="live-{job.id}.zip"'})  # fmt: skip


def _query_value(text: str):
    """A query-string option as JSON would give it: an integer, a number, or the string itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _guard(endpoint):
    """Bad requests as JSON 4xx; library errors as 400; anything else as a JSON 500 (and a log line)."""

    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except RequestError as error:
            return JSONResponse(error.body(), status_code=error.status, headers=error.headers)
        except RnnkitError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        except Exception as error:
            log.exception("%s %s failed", request.method, request.url.path)
            return JSONResponse({"error": f"internal error: {type(error).__name__}: {error}"}, status_code=500)

    return guarded


async def _http_error(request: Request, error: HTTPException) -> Response:
    messages = {404: f"no such route: {request.method} {request.url.path}", 405: "method not allowed"}
    return JSONResponse({"error": messages.get(error.status_code, error.detail)}, status_code=error.status_code)


def create_app(runs: Runs, *, limits: Limits | None = None, work_dir: str | Path | None = None,
               save_dir: str | Path = "runs") -> Starlette:  # fmt: skip
    """The app serving ``runs`` under ``limits``. Live trainings work in ``work_dir`` (default: a
    temporary folder removed at shutdown) and are saved under ``save_dir``."""
    server = Server(runs, limits or Limits(), None if work_dir is None else Path(work_dir), Path(save_dir))

    @asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            server.close()

    s = server
    routes = [Route(path, _guard(s.page), methods=["GET"]) for path in STATIC]
    routes += [
        Route("/healthz", _guard(s.healthz), methods=["GET"]),
        Route("/api/runs", _guard(s.list_runs), methods=["GET"]),
        Route("/api/generate", _guard(s.generate), methods=["POST"]),
        Route("/api/next", _guard(s.next_token), methods=["POST"]),
        Route("/api/classify", _guard(s.classify), methods=["POST"]),
        Route("/api/tag", _guard(s.tag), methods=["POST"]),
        Route("/api/seq2seq", _guard(s.seq2seq), methods=["POST"]),
        Route("/api/corpora", _guard(s.corpora), methods=["POST"]),
        Route("/api/train", _guard(s.train), methods=["POST"]),
        Route("/api/train/{id:str}", _guard(s.train_status), methods=["GET"]),
        Route("/api/train/{id:str}/download", _guard(s.train_download), methods=["GET"]),
        Route("/api/train/{id:str}/{action:str}", _guard(s.train_action), methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error}, lifespan=lifespan)
    app.state.server = server
    return app

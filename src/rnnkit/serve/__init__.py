"""``rnnkit serve``: a web page and a JSON API over run directories, on the CPU.

- :mod:`~rnnkit.serve.app`: the ASGI app (Starlette) and its routes, :func:`create_app`;
- :mod:`~rnnkit.serve.runs`: the served runs, loaded once at start and found by name;
- :mod:`~rnnkit.serve.limits`: the limits and the strict reading of requests (every bad one a 4xx);
- :mod:`~rnnkit.serve.generation`: streamed sampling, stepped from worker threads, stopped at once;
- :mod:`~rnnkit.serve.predict`: classify, tag, seq2seq (with attention), the next-token distribution;
- :mod:`~rnnkit.serve.streaming`: Server-Sent Events that end when the client goes away;
- :mod:`~rnnkit.serve.training`: live training of a small character model in a worker process;
- ``static/``: the page (plain HTML, JavaScript and CSS, no build step, nothing fetched from elsewhere).

The command (:mod:`rnnkit.apps.serve`) loads the runs and runs the app under uvicorn.
"""

from rnnkit.serve.app import create_app
from rnnkit.serve.limits import Limits, RequestError
from rnnkit.serve.runs import CorporaSet, Runs, ServedRun, load_runs

__all__ = ["CorporaSet", "Limits", "RequestError", "Runs", "ServedRun", "create_app", "load_runs"]

"""Screenshots of every page of ``rnnkit serve`` for docs/ (not a test: run it by hand on trained runs).

    python tests/browser/screenshots.py runs/shakespeare runs/conll runs/sort runs/corpora --out docs

Serves the runs as ``rnnkit serve`` does, drives each tab in headless Chromium as the browser tests do, and
writes docs/serve-{generate,classify,tag,seq2seq,train}.png, reduced to a 64-colour palette (small files).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, for serve_runs
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/browser/, for conftest

from conftest import launch_browser  # noqa: E402
from rnnkit.apps.serve import collect_runs  # noqa: E402
from rnnkit.serve import create_app  # noqa: E402
from rnnkit.tasks.lm import default_corpus  # noqa: E402
from serve_runs import LiveServer  # noqa: E402


def shrink(path: Path) -> None:
    from PIL import Image

    Image.open(path).convert("RGB").quantize(colors=64).save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--out", default="docs")
    parser.add_argument("--save-dir", default="/tmp/rnnkit-screenshots")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = collect_runs(args.runs)
    from playwright.sync_api import sync_playwright

    with LiveServer(create_app(runs, save_dir=args.save_dir)) as url, sync_playwright() as p:
        browser = launch_browser(p)
        page = browser.new_page(viewport={"width": 1100, "height": 760})

        def shot(name: str) -> None:
            path = out / f"serve-{name}.png"
            page.screenshot(path=str(path), full_page=True)
            shrink(path)
            print(f"wrote {path}", file=sys.stderr)

        def open_tab(tab: str) -> None:
            page.goto(f"{url}/#{tab}")
            page.wait_for_selector("body[data-ready='1']")

        open_tab("generate")
        page.fill("#gen-prime", "ROMEO:")
        page.fill("#gen-length", "400")
        page.fill("#gen-seed", "3")
        page.click("#gen-start")
        page.wait_for_function("document.querySelector('#gen-status').textContent.startsWith('done')")
        page.check("#gen-pick")
        page.wait_for_selector("#gen-candidates button.candidate")
        page.uncheck("#gen-pick")
        page.click("#gen-start")
        page.wait_for_function("document.querySelector('#gen-status').textContent.startsWith('done')")
        shot("generate")

        open_tab("classify")
        classifiers = [r.name for r in runs if r.task == "classify"]
        corpora = [n for n in classifiers if runs.get(n).info.get("corpora")]
        page.select_option("#cls-run", (corpora or classifiers)[0])
        page.fill("#cls-text", "It is a truth universally acknowledged, that a single man in possession of a good "
                               "fortune, must be in want of a wife.")  # fmt: skip
        page.click("#cls-go")
        page.wait_for_selector("#cls-bars .bar")
        if page.locator("#cls-corpora").is_visible():
            page.fill("#cls-corpora-n", "2")
            page.click("#cls-corpora-go")
            page.wait_for_selector("#cls-corpora-table tr:nth-child(2)")
        shot("classify")

        open_tab("tag")
        page.fill("#tag-text", "Angela Merkel met Emmanuel Macron in Paris on Monday , Reuters reported .\n"
                               "Manchester United signed the Brazilian striker from FC Porto .")  # fmt: skip
        page.click("#tag-go")
        page.wait_for_selector("#tag-output mark.ent")
        shot("tag")

        open_tab("seq2seq")
        page.click("#s2s-go")
        page.wait_for_selector("#s2s-heatmap table")
        shot("seq2seq")

        open_tab("train")
        text = default_corpus().read_text(encoding="utf-8")[:100_000]
        page.wait_for_selector("#train-text")
        page.evaluate("text => { document.querySelector('#train-text').value = text; }", text)
        page.fill("#train-budget", "40")
        page.fill("#train-eval", "50")
        page.click("#train-start")
        page.wait_for_function("Number(document.querySelector('#train-curve').dataset.valid) >= 4", timeout=120_000)
        shot("train")
        page.click("#train-stop")
        browser.close()


if __name__ == "__main__":
    main()

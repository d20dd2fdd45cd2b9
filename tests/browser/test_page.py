"""The page as a person uses it: type a prime, move the temperature slider, watch tokens arrive one by one,
stop; pick next tokens; classify (and the 4-corpus passages); tag; a seq2seq heat map; a live training
whose curve grows, paused, resumed, stopped and saved.

The server is the real app under uvicorn on 127.0.0.1; generation is slowed to one token per 10 ms
(as a larger model would sample) so that the stream can be watched and stopped mid-way.
"""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from serve_runs import LiveServer, build_all, build_corpora, lm_text, serve_app, slow_generation


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    root = tmp_path_factory.mktemp("page")
    runs = build_all(root)
    runs["corpora"] = build_corpora(root / "c")
    with LiveServer(serve_app(runs, root / "saved")) as url:
        yield url


@pytest.fixture
def page(browser, url):
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, errors  # no JavaScript error on the way


def open_tab(page, url, tab):
    page.goto(f"{url}/#{tab}")
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator(f"#{tab}").is_visible()


def tokens_shown(page) -> int:
    return int(page.locator("#gen-outputs pre").first.get_attribute("data-tokens"))


def test_tokens_arrive_one_by_one_and_stop_ends_the_stream(page, url, monkeypatch, screenshot):
    seen = slow_generation(monkeypatch, delay=0.01)
    open_tab(page, url, "generate")
    page.fill("#gen-prime", "wave ")
    page.focus("#gen-temp")
    for _ in range(30):  # the log-scale slider: 10^-0.1 = 0.79 down to 10^-0.4 = 0.40
        page.keyboard.press("ArrowLeft")
    assert page.inner_text("#gen-temp-value") == "0.40"
    page.fill("#gen-length", "2000")
    page.fill("#gen-seed", "4")
    with page.expect_request("**/api/generate") as sent:
        page.click("#gen-start")
    body = json.loads(sent.value.post_data)
    assert body["temperature"] == 0.4 and body["prime"] == "wave " and body["seed"] == 4
    counts = []
    for _ in range(4):  # the count grows while the stream runs: tokens are shown as they come
        page.wait_for_function(f"Number(document.querySelector('#gen-outputs pre').dataset.tokens) > "
                               f"{counts[-1] if counts else 0}")  # fmt: skip
        counts.append(tokens_shown(page))
    assert counts == sorted(counts) and counts[-1] < 2000
    assert page.locator("#gen-outputs pre").first.inner_text().startswith("wave ")
    screenshot(page, "generate")
    page.click("#gen-stop")
    page.wait_for_function("document.querySelector('#gen-status').textContent.startsWith('stopped after')")
    stopped_at = tokens_shown(page)
    deadline = time.monotonic() + 3
    while not seen["closed"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert seen["closed"] == 1 and seen["yielded"] < 1000  # the server stopped sampling too
    page.wait_for_timeout(300)
    assert tokens_shown(page) == stopped_at
    health = httpx.get(url + "/healthz").json()["generations"]
    assert health["active"] == 0 and health["stopped"] >= 1
    assert page.locator("#gen-start").is_enabled() and page.locator("#gen-stop").is_disabled()


def test_a_whole_sample_ends_with_the_command_that_writes_it_again(page, url):
    open_tab(page, url, "generate")
    page.fill("#gen-length", "50")
    page.fill("#gen-samples", "2")
    page.click("#gen-start")
    page.wait_for_function("document.querySelector('#gen-status').textContent.startsWith('done')")
    assert page.locator("#gen-outputs pre").count() == 2
    assert all(int(n.get_attribute("data-tokens")) == 50 for n in page.locator("#gen-outputs pre").all())
    assert re.search(r"rnnkit sample lm --length 50 --temperature 0\.79 --num-samples 2 --seed \d+",
                     page.inner_text("#gen-command"))  # fmt: skip


def test_pick_the_next_token(page, url):
    open_tab(page, url, "generate")
    page.fill("#gen-prime", "cow")
    page.check("#gen-pick")
    page.wait_for_selector("#gen-candidates button.candidate")
    candidates = page.locator("#gen-candidates button.candidate")
    assert candidates.count() == 10
    shares = [float(re.search(r"(\d+(?:\.\d+)?)%$", c.inner_text()).group(1)) for c in candidates.all()]
    assert shares == sorted(shares, reverse=True)
    token = json.loads('"' + candidates.first.evaluate("b => b.firstChild.textContent") + '"')  # shown escaped
    candidates.first.click()
    page.wait_for_function(f"document.querySelector('#gen-picked').textContent === {json.dumps('cow' + token)}")


def test_classify_shows_label_probabilities_as_bars_and_the_corpus_of_each_passage(page, url, screenshot):
    open_tab(page, url, "classify")
    page.fill("#cls-text", "wave ship sail salt tide harbour anchor storm")
    page.click("#cls-go")
    page.wait_for_selector("#cls-bars .bar")
    bars = page.locator("#cls-bars .bar")
    assert sorted(b.get_attribute("data-label") for b in bars.all()) == ["farm", "sea"]
    widths = [float(b.locator(".fill").evaluate("n => parseFloat(n.style.width)")) for b in bars.all()]
    assert sum(widths) == pytest.approx(100, abs=0.2) and widths[0] >= widths[1]
    assert page.locator("#cls-corpora").is_hidden()
    page.select_option("#cls-run", "corpora/classifier")
    assert page.locator("#cls-corpora").is_visible()
    page.click("#cls-corpora-go")
    page.wait_for_selector("#cls-corpora-table tr:nth-child(5)")
    rows = page.locator("#cls-corpora-table tr")
    assert rows.count() == 5  # a header and 2 passages of each of the 2 corpora
    assigned = [r.locator("td").nth(2).inner_text() for r in rows.all()[1:]]
    assert set(assigned) <= {"farm", "sea"}
    screenshot(page, "classify")


def test_tag_highlights_entities_by_type(page, url, screenshot):
    open_tab(page, url, "tag")
    page.fill("#tag-text", "Mary Smith visited Paris .\nKarl joined the United Nations .")
    page.click("#tag-go")
    page.wait_for_selector("#tag-output mark.ent")
    marks = page.locator("#tag-output mark.ent")
    kinds = {m.get_attribute("data-type") for m in marks.all()}
    assert kinds <= {"PER", "LOC", "ORG"} and len(kinds) >= 2
    colours = {m.evaluate("n => getComputedStyle(n).backgroundColor") for m in marks.all()}
    assert len(colours) == len(kinds)  # one colour per type
    assert page.locator("#tag-legend mark").count() == 3
    assert page.inner_text("#tag-output").replace("PER", "").replace("LOC", "").replace("ORG", "").split() == \
        "Mary Smith visited Paris . Karl joined the United Nations .".split()  # fmt: skip
    screenshot(page, "tag")


def test_seq2seq_shows_the_output_and_an_attention_heat_map(page, url, screenshot):
    open_tab(page, url, "seq2seq")
    page.fill("#s2s-input", "31415")
    page.click("#s2s-go")
    page.wait_for_selector("#s2s-heatmap table")
    out = page.inner_text("#s2s-output")
    rows = page.locator("#s2s-heatmap tr")
    assert rows.count() == 1 + len(out) + 1  # the input row, one per output character and <end>
    assert page.locator("#s2s-heatmap tr").nth(1).locator("td").count() == 5
    screenshot(page, "seq2seq")


def test_live_training_grows_the_curve_pauses_resumes_and_saves(page, url, screenshot):
    open_tab(page, url, "train")
    page.fill("#train-text", lm_text(seed=5, lines=400))
    page.fill("#train-hidden", "32")
    page.fill("#train-budget", "60")
    page.fill("#train-eval", "40")
    page.click("#train-start")
    points = "Number(document.querySelector('#train-curve').dataset.points)"
    page.wait_for_function(f"{points} >= 2", timeout=30_000)
    first = int(page.locator("#train-curve").get_attribute("data-points"))
    page.wait_for_function(f"{points} > {first}")
    page.wait_for_function("document.querySelector('#train-sample').textContent.length > 0", timeout=30_000)
    assert page.locator("#train-curve polyline.train").get_attribute("points").count(",") >= 2
    screenshot(page, "train")
    page.click("#train-pause")
    page.wait_for_function("document.querySelector('#train-pause').textContent === 'Resume'")
    held = int(page.locator("#train-curve").get_attribute("data-points"))
    page.wait_for_timeout(500)
    assert int(page.locator("#train-curve").get_attribute("data-points")) == held
    page.click("#train-pause")
    page.wait_for_function(f"{points} > {held}")
    page.click("#train-stop")
    page.wait_for_function("document.querySelector('#train-status').textContent.startsWith('stopped')")
    page.click("#train-save")
    page.wait_for_selector("#train-saved a")
    assert "saved as" in page.inner_text("#train-saved")

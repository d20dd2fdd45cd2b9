"""The page of ``rnnkit serve`` in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

The tests skip, saying why, only where the browser cannot be started (no playwright package, no
chromium binary); .ci/run installs both. With RNNKIT_SCREENSHOTS=DIR each test also saves a PNG of
its page there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("RNNKIT_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]  # fmt: skip


def launch_browser(playwright):
    """Chromium from Debian's package (``playwright install`` would download its own build)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.skip("browser tests need the playwright package (pip install -e '.[dev]')")
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        try:
            browser = launch_browser(p)
        except Error as error:
            pytest.skip(f"Chromium at {CHROMIUM} could not be started: {str(error).splitlines()[0]}")
        yield browser
        browser.close()


@pytest.fixture
def screenshot():
    """``screenshot(page, name)``: a PNG of the page in $RNNKIT_SCREENSHOTS, when it is set."""
    folder = os.environ.get("RNNKIT_SCREENSHOTS")

    def take(page, name: str) -> None:
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(folder) / f"serve-{name}.png"), full_page=True)

    return take

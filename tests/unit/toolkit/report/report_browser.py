"""Headless Chromium (Debian's `chromium` and `chromium-driver`) driven through Selenium, for the
HTML report's tests: open a page, read its DOM, its console and a screenshot.

`make chromium` installs both packages (`make test` runs it); without them the tests fail with
what to do, they are not skipped."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

#: Page-load and script timeouts: generous, the machine may be loaded.
TIMEOUT_S = 120


@contextmanager
def chromium(profile: Path) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with its console kept, its profile in `profile`."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        pytest.fail(
            "headless Chromium is missing (chromium and chromedriver): `make chromium` installs "
            "Debian's packages chromium and chromium-driver"
        )
    options = Options()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace for the sandbox
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1280,1400",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    # The console, and the DevTools protocol's events (each request the page makes).
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    browser = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    browser.set_page_load_timeout(TIMEOUT_S)
    browser.set_script_timeout(TIMEOUT_S)
    try:
        yield browser
    finally:
        browser.quit()


@dataclass(frozen=True)
class Loaded:
    """What loading a page did: its console's errors (a script error, console.error, a resource
    that failed to load) and every URL it requested after its own."""

    errors: list[str]
    fetched: list[str]


def open_page(browser: webdriver.Chrome, path: Path) -> Loaded:
    """Load the file `path` and say what its loading did."""
    browser.get_log("browser")  # what earlier pages did is theirs
    browser.get_log("performance")
    url = Path(path).resolve().as_uri()
    browser.get(url)
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    fetched = []
    for entry in browser.get_log("performance"):
        event = json.loads(entry["message"])["message"]
        if event.get("method") != "Network.requestWillBeSent":
            continue
        params = event["params"]
        requested = params["request"]["url"]
        # The page's own requests (not the browser's for its start page), past the page itself.
        own = params.get("documentURL") == url and requested != url
        if own and not requested.startswith("data:"):
            fetched.append(requested)
    return Loaded(errors, fetched)


def colours(browser: webdriver.Chrome) -> tuple[int, float]:
    """A screenshot's distinct colours, and the share of its pixels in the commonest one."""
    image = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    counts = image.getcolors(maxcolors=image.width * image.height) or []
    top = max(n for n, _ in counts)
    return len(counts), top / (image.width * image.height)


def rects_overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    """Whether two DOMRects (getBoundingClientRect) share any area."""
    return (
        a["left"] < b["right"]
        and b["left"] < a["right"]
        and a["top"] < b["bottom"]
        and b["top"] < a["bottom"]
    )

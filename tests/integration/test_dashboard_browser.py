"""The dashboard in a real headless browser (Debian's chromium, driven by Playwright).

One live fleet for the module: a real worker on a SQLite backend with jobs trickling in, and a
real ``kqueue dashboard`` process. The pages load, live numbers change while jobs run, the retry
and delete buttons work, the what-if form returns a prediction, and a job whose error is
``<script>alert(1)</script>`` shows as text. Screenshots of each page go to the test's folder,
or to ``$KQUEUE_SCREENSHOTS`` (``docs/screenshots`` is made that way).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.support.dashfleet import PARKED, XSS, Fleet

CHROMIUM = "/usr/bin/chromium"
PAGES = {"overview": "/", "classes": "/classes", "dead": "/dead", "job": "/job", "plan": "/plan"}


def require_browser():
    """Playwright's sync API and a chromium binary; skip without them, fail under ``CI=true``."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    binary = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if sync_playwright is None or binary is None:
        message = "no browser: pip install playwright and apt-get install chromium (.ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return sync_playwright, binary


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    fleet = Fleet(tmp_path_factory.mktemp("dashfleet"))
    fleet.start_worker()
    fleet.dispatch("mail.send", 60)
    fleet.dispatch("report.build", 6)
    fleet.dispatch("<b>evil</b>", 2)
    fleet.park_dead(3)
    fleet.trickle(per_s=4)
    fleet.start_dashboard()
    yield fleet
    fleet.close()


@pytest.fixture(scope="module")
def browser(fleet):
    sync_playwright, binary = require_browser()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=binary, headless=True, args=["--no-sandbox"]
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, fleet):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs
    yield page
    context.close()


def until(check, timeout_s: float) -> bool:
    """Poll ``check`` until it is true or ``timeout_s`` passed; its last answer."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def shots_folder(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("KQUEUE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_every_page_loads_without_errors_and_is_screenshotted(page, fleet, tmp_path):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    time.sleep(2)  # some trace rows in
    folder = shots_folder(tmp_path)
    for name, path in PAGES.items():
        if name == "job":
            path = "/job?id=" + fleet.park_dead(1)[0]
        page.goto(fleet.base + path, timeout=120_000)
        page.wait_for_load_state("networkidle" if name != "overview" else "load")
        if name == "overview":
            assert until(lambda: page.locator("#updated").inner_text() != "", 20)
        assert page.title() == f"kqueue · {page.locator('nav a.here').inner_text()}"
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    assert errors == []
    assert page.dialogs == []


def test_live_numbers_change_while_jobs_run(page, fleet):
    page.goto(fleet.base + "/")
    assert until(lambda: page.locator("#updated").inner_text() != "", 20)
    first = page.locator("#updated").inner_text()
    rows = page.locator("#trace-rows").inner_text()
    # Then within a few live updates (every 2 s) both the clock and the trace's row count move
    # (polled from here: the page's CSP forbids the eval that wait_for_function uses)
    assert until(lambda: page.locator("#updated").inner_text() != first, 20)
    assert until(lambda: page.locator("#trace-rows").inner_text() != rows, 20)
    assert page.locator("#chart-tier polyline").count() >= 1


def test_retry_and_delete_buttons_work(page, fleet):
    retried, deleted = fleet.park_dead(2)
    page.goto(fleet.base + "/dead")
    page.locator(f"tr[data-job='{retried}'] button.retry").click()
    page.wait_for_url("**/dead?done=*")
    assert page.locator("#done").inner_text() == "retried 1"
    assert page.locator(f"tr[data-job='{retried}']").count() == 0
    page.locator(f"tr[data-job='{deleted}'] button.delete").click()
    page.wait_for_url("**/dead?done=*")
    assert page.locator("#done").inner_text() == "deleted 1"
    assert page.locator(f"tr[data-job='{deleted}']").count() == 0
    # the retried job waits on its (unserved) queue; the deleted one is gone
    assert fleet.backend.lookup(retried, PARKED).state.value == "queued"
    assert fleet.backend.lookup(deleted, PARKED).state.value == "unknown"


def test_a_scripted_error_shows_as_text(page, fleet):
    page.goto(fleet.base + "/dead")
    cells = page.locator("#dead pre.error-text")
    assert cells.count() >= 1
    assert XSS in cells.first.inner_text()  # the literal text, not markup
    assert page.locator("#dead td", has_text="<b>evil</b>").count() >= 1
    assert page.locator("#dead b").count() == 0  # the job's class name did not become markup
    assert page.dialogs == []


def test_the_what_if_form_returns_a_prediction(page, fleet):
    page.goto(fleet.base + "/plan", timeout=120_000)
    page.locator("#wi-pool_size").fill("1")
    page.locator("#wi-pool_max_size").fill("1")
    page.locator("#simulate").click()
    page.wait_for_selector("td.what-if", timeout=120_000)
    throughput = page.locator("td.what-if[data-f='throughput_per_min']").inner_text()
    assert throughput.endswith("/min") and throughput != "- /min"
    link = page.locator("#download-what-if").get_attribute("href")
    assert "pool_size=1" in link

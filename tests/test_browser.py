"""The dashboard in a real headless browser: Debian's chromium under Playwright.

The browser is the system's (``/usr/bin/chromium``, which ``.ci/run``
installs); Playwright never downloads one. Without it the tests are skipped
and say why, unless ``PINGPAY_REQUIRE_SERVERS=1`` (CI), where that fails.
Screenshots of each step go to the test's folder, or to
``PINGPAY_SCREENSHOT_DIR`` when it is set, for a person to look at.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.targets import Reply

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.browser


def _unavailable(reason: str) -> None:
    if os.environ.get("PINGPAY_REQUIRE_SERVERS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """One chromium for the module's tests."""
    if not CHROMIUM.exists():
        _unavailable(f"no browser at {CHROMIUM}: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


PHONE = {"width": 390, "height": 844}

#: How far the page, anything inside a panel, and the page past the dark
#: header's end reach beyond the right edge of the screen.
SPILL = """() => {
  const width = document.documentElement.clientWidth;
  const scrolled = document.documentElement.scrollWidth;
  let panels = 0;
  for (const panel of document.querySelectorAll('.panel')) {
    const edge = panel.getBoundingClientRect().right;
    for (const inner of panel.querySelectorAll('*')) {
      panels = Math.max(panels, inner.getBoundingClientRect().right - edge);
    }
  }
  return {
    page: scrolled - width,
    panels: Math.round(panels),
    header: scrolled - document.querySelector('header.top').offsetWidth,
  };
}"""


@pytest.fixture
def viewport() -> dict:
    """The page's size; a test sets it with ``parametrize`` to take another."""
    return {"width": 1280, "height": 900}


@pytest.fixture
def page(browser, tmp_path, viewport):
    """A fresh page; ``page.shot(name)`` saves a full-page screenshot."""
    folder = Path(os.environ.get("PINGPAY_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.shot = lambda name: page.screenshot(
        path=str(folder / f"{name}.png"), full_page=True
    )
    yield page
    context.close()


def create_job(service, target: str, name: str, **changes) -> dict:

    body = {
        "name": name,
        "target": target,
        "schedule_type": "cron",
        "cron_expression": "0 9 * * MON-FRI",
        "timezone": "Europe/Paris",
    } | changes
    response = requests.post(f"{service.url}/jobs", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


def test_open_a_job_trigger_it_and_see_the_run_succeed(
    page, live_service, target_server
):
    job = create_job(live_service, target_server.url("/report"), "Weekday report")
    create_job(live_service, target_server.url("/other"), "Another job")

    page.goto(f"{live_service.url}/ui")
    row = page.locator(f"tr[data-job-id='{job['id']}']")
    row.wait_for()
    assert "At 09:00, Monday through Friday (Europe/Paris)" in row.inner_text()
    page.shot("1-jobs")

    row.get_by_role("link", name="Weekday report").click()
    page.get_by_role("heading", name="Weekday report").wait_for()
    assert page.locator(".fire-times li").count() == 5
    page.get_by_role("button", name="Trigger now").click()
    page.get_by_role("status").get_by_text("Triggered").wait_for()

    run = page.locator("details.new[data-run-id]")
    assert "manual" in run.inner_text()
    target_server.wait_for(1, "/report")
    status = run.locator("summary .badge")
    _reload_until(page, lambda: "succeeded" in status.inner_text())
    run.locator("summary").click()
    attempt = run.locator(".attempts tbody tr").first
    assert "200" in attempt.inner_text() and "succeeded" in attempt.inner_text()
    page.shot("2-job-after-trigger")


def test_pause_from_the_page_and_find_it_under_paused(
    page, live_service, target_server
):
    job = create_job(live_service, target_server.url("/"), "Pausable")

    page.goto(f"{live_service.url}/ui/jobs/{job['id']}")
    page.get_by_role("button", name="Pause").click()
    page.get_by_role("button", name="Resume").wait_for()
    assert "None while paused" in page.inner_text("body")
    page.get_by_role("link", name="← Jobs").click()
    page.get_by_role("link", name="Paused 1").click()

    rows = page.locator("tr[data-job-id]")
    assert rows.count() == 1
    assert "paused" in rows.first.inner_text()
    page.shot("3-paused-filter")


def test_delete_asks_first_then_removes_the_job(page, live_service, target_server):
    job = create_job(live_service, target_server.url("/"), "Doomed")

    page.goto(f"{live_service.url}/ui/jobs/{job['id']}")
    delete = page.get_by_role("button", name="Delete job")
    assert not delete.is_visible()
    page.get_by_text("Delete…").click()
    delete.click()

    page.get_by_role("status").get_by_text("Deleted").wait_for()
    assert page.locator(f"tr[data-job-id='{job['id']}']").count() == 0


@pytest.mark.parametrize("viewport", [PHONE], ids=["phone"])
def test_on_a_phone_nothing_is_wider_than_the_screen(page, live_service, target_server):
    target_server.reply("/busy", Reply(503, body=b"busy " * 40))
    job = create_job(
        live_service,
        target_server.url("/busy"),
        "Invoice reminders for overdue accounts",
        retry={"max_attempts": 2, "backoff_seconds": 0},
    )
    create_job(live_service, target_server.url("/"), "Another job")
    requests.post(f"{live_service.url}/jobs/{job['id']}/trigger", timeout=10)
    target_server.wait_for(2, "/busy")

    page.goto(f"{live_service.url}/ui")
    assert page.evaluate(SPILL) == {"page": 0, "panels": 0, "header": 0}
    page.shot("4-phone-jobs")
    page.goto(f"{live_service.url}/ui/jobs/{job['id']}")
    run = page.locator("details[data-run-id]:has(.badge.failed)")
    _reload_until(page, lambda: run.count() == 1)
    run.locator("summary").click()
    run.locator(".attempts tbody tr").nth(1).wait_for()
    assert page.evaluate(SPILL) == {"page": 0, "panels": 0, "header": 0}
    page.shot("5-phone-job")


def _reload_until(page, check, attempts: int = 40) -> None:
    for _ in range(attempts):
        if check():
            return
        page.wait_for_timeout(250)
        page.reload()
    raise AssertionError("the page never showed what was expected")

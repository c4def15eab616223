"""The rating page in Debian's headless Chromium (playwright): login, mouse and keyboard ratings, reload, completion.

Screenshots of every step go to test-artifacts/annotation-browser/ (gitignored). Skipped when /usr/bin/chromium or
playwright is missing (`make browser` installs Chromium with apt; never `playwright install`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed (make browser)")]
pw = pytest.importorskip("playwright.sync_api")
pytest.importorskip("gradio")

from annotation.example import make_campaign  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "annotation-browser"
SCRIPT_CAPTION = "<script>window.__pwned = 1; alert('xss')</script><img src=x onerror=\"window.__pwned=2\"> a dog"
SYSTEMS = ("sysGammaQX9", "sysDeltaQX9")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-campaign")
    ex = make_campaign(root, n_images=3, systems=SYSTEMS, rubric="flickr8k", annotators=("ann1",),
                       raters_per_item=1, extra_captions={SYSTEMS[1]: {"100037": SCRIPT_CAPTION}})
    from annotation.app import launch
    from annotation.service import open_campaign

    svc = open_campaign(ex.path).service
    demo, url = launch(svc, port=None, prevent_thread_lock=True, quiet=True)
    yield url, ex, svc
    demo.close()
    svc.close()


def test_rate_by_mouse_and_keyboard_reload_resume_and_finish(served):
    url, ex, svc = served
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    expect = pw.expect
    outside: list[str] = []
    dialogs: list[str] = []
    captions: list[str] = []
    step = iter(range(1, 100))

    def shot(page, name):
        page.screenshot(path=str(ARTIFACTS / f"{next(step):02d}-{name}.png"), full_page=True)

    def at_item(page, k):
        expect(page.locator("#progress")).to_contain_text(f"Item {k} of 6", timeout=30_000)
        expect(page.locator("#rating input:checked")).to_have_count(0)  # no rating carried over
        captions.append(page.locator("#caption textarea").input_value())

    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(
                ("http://127.0.0.1", "http://localhost", "data:", "blob:")) else None)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_label("username").fill("ann1")
            page.get_by_label("password").fill(ex.passwords["ann1"])
            shot(page, "login")
            page.get_by_role("button", name="Login").click()
            at_item(page, 1)
            expect(page.locator("#help")).to_contain_text("almost describes the image, with minor mistakes")
            expect(page.locator("#image img")).to_be_visible()
            shot(page, "first-item")

            # item 1: mouse only
            page.locator("#rating label").filter(has_text="almost describes").click()
            expect(page.locator("#rating input[value='3']")).to_be_checked()
            page.locator("#submit").click()
            at_item(page, 2)
            shot(page, "after-mouse-rating")

            # item 2: keyboard only
            page.locator("#progress").click()
            page.keyboard.press("2")
            expect(page.locator("#rating input[value='2']")).to_be_checked()
            page.keyboard.press("Enter")
            at_item(page, 3)
            shot(page, "after-keyboard-rating")

            # item 3: keyboard rating, a comment typed (digits typed there must not rate), mouse submit
            page.locator("#progress").click()
            page.keyboard.press("4")
            page.locator("#comment textarea").fill("")
            page.locator("#comment textarea").type("saw 1 dog")
            expect(page.locator("#rating input[value='4']")).to_be_checked()
            page.locator("#submit").click()
            at_item(page, 4)
            token_before = page.locator("#item_token textarea, #item_token input").first.input_value()

            page.reload(wait_until="domcontentloaded")
            at_item(page, 4)
            assert page.locator("#item_token textarea, #item_token input").first.input_value() == token_before
            shot(page, "after-reload-resumes-at-4")

            for k in (5, 6, 7):
                page.locator("#progress").click()
                page.keyboard.press("1")
                page.keyboard.press("Enter")
                if k <= 6:
                    at_item(page, k)
            expect(page.locator("#done")).to_contain_text("All done", timeout=30_000)
            expect(page.locator("#annotate")).to_be_hidden()
            shot(page, "completion-screen")
            pwned = page.evaluate("() => window.__pwned")

            # the researcher view, in a fresh browser context (own login)
            admin = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
            admin.goto(url, wait_until="domcontentloaded")
            admin.get_by_label("username").fill("boss")
            admin.get_by_label("password").fill(ex.passwords["boss"])
            admin.get_by_role("button", name="Login").click()
            expect(admin.locator("#per_annotator")).to_contain_text("ann1", timeout=30_000)
            expect(admin.locator("#per_system")).to_contain_text(SYSTEMS[0])
            expect(admin.locator("#annotate")).to_be_hidden()
            shot(admin, "admin-view")
        finally:
            browser.close()

    assert SCRIPT_CAPTION in captions  # shown verbatim as text ...
    assert pwned is None and dialogs == []  # ... and never executed
    assert outside == [], outside
    rows = {r["public_id"]: r for r in svc.store.all_ratings()}
    assert len(rows) == 6
    got = sorted(r["ratings"]["rating"] for r in rows.values())
    assert got == [1, 1, 1, 2, 3, 4]
    assert any(r["comment"] == "saw 1 dog" for r in rows.values())
    assert len(list(ARTIFACTS.glob("*.png"))) == 7

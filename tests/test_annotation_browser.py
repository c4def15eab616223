"""The rating page in Debian's headless Chromium (playwright): login, mouse and keyboard ratings, reload, completion.

Screenshots of every step go to test-artifacts/annotation-browser/ (gitignored). Skipped when /usr/bin/chromium or
playwright is missing (`make browser` installs Chromium with apt; never `playwright install`).
"""

from __future__ import annotations

import json
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
    running = launch(svc, port=None, prevent_thread_lock=True, quiet=True)
    yield running.url, ex, svc
    running.close()
    svc.close()


def test_rate_by_mouse_and_keyboard_reload_resume_and_finish(served):
    url, ex, svc = served
    out = ARTIFACTS / "flickr8k"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    expect = pw.expect
    outside: list[str] = []
    dialogs: list[str] = []
    captions: list[str] = []
    step = iter(range(1, 100))

    def shot(page, name):
        page.screenshot(path=str(out / f"{next(step):02d}-{name}.png"), full_page=True)

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
            page.get_by_role("button", name="Log in").click()
            at_item(page, 1)
            page.locator("#help").click()  # "How to rate" opens in place
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
            page.locator("#review").click()  # review and change from the done page
            expect(page.locator("#progress")).to_contain_text("Item 6 of 6", timeout=30_000)
            expect(page.locator("#rating input[value='1']")).to_be_checked()
            page.locator("#rating label").filter(has_text="almost describes").click()
            page.locator("#submit").click()
            expect(page.locator("#status")).to_contain_text("Changed", timeout=30_000)
            pwned = page.evaluate("() => window.__pwned")

            # the researcher view, in a fresh browser context (own login)
            admin = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
            admin.goto(url, wait_until="domcontentloaded")
            admin.get_by_label("username").fill("boss")
            admin.get_by_label("password").fill(ex.passwords["boss"])
            admin.get_by_role("button", name="Log in").click()
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
    assert got == [1, 1, 2, 3, 3, 4]  # the last item was changed from 1 to 3 after finishing
    assert any(r["comment"] == "saw 1 dog" for r in rows.values())
    assert len(list(out.glob("*.png"))) == 7


def _wait_up(url: str, proc, log: Path) -> None:
    import time

    import httpx

    t0 = time.time()
    while time.time() - t0 < 180:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            httpx.get(url + "health", timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError(log.read_text()[-3000:])


def test_thumb_study_instructions_fit_incomplete_restart_relogin_logout(tmp_path):
    """The THumB rubric on laptop screens, as a served CLI process: consent page first, the item fits 1440x900 and
    1366x768, an incomplete submit says why next to the field, a server restart keeps the page working, an ended
    session asks to log in again and then sends what was entered, the instructions stay reachable, logout works."""
    import sqlite3

    import yaml

    from annotation.example import free_port, serve_in_subprocess, stop_process

    out = ARTIFACTS / "thumb"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    ex = make_campaign(tmp_path, n_images=3, rubric="thumb", annotators=("ann1",), raters_per_item=1,
                       image_size=(640, 480))
    doc = yaml.safe_load(ex.path.read_text())
    doc["instructions"] = "Rate **what the caption says**, not its style.\n\n- look at the whole image first"
    doc["consent"] = "Your ratings are stored under your login and used for research only."
    doc["practice"] = [{"image_id": ex.image_ids[0], "caption": "A plate of spaghetti.",
                        "expect": {"precision": [1]}, "explain": "Nothing in the image is food."}]
    ex.path.write_text(yaml.safe_dump(doc, sort_keys=False))
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "server.log"
    proc = serve_in_subprocess(ex.path, port, log, append=True)
    expect = pw.expect
    step = iter(range(1, 100))
    outside: list[str] = []

    def shot(page, name):
        page.screenshot(path=str(out / f"{next(step):02d}-{name}.png"))

    def db_rows():
        db = sqlite3.connect(tmp_path / "ratings.db", timeout=30)
        try:
            return [json.loads(r[0]) for r in db.execute("SELECT ratings FROM ratings ORDER BY id")]
        finally:
            db.close()

    def above_fold(page, height):
        for sel in ("#submit", "#help", "#precision", "#recall", "#caption"):
            box = page.locator(sel).first.bounding_box()
            assert box is not None and box["y"] + box["height"] <= height, (sel, box, height)

    try:
        _wait_up(url, proc, log)
        with pw.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(
                    ("http://127.0.0.1", "data:", "blob:")) else None)
                page.goto(url, wait_until="domcontentloaded")
                page.get_by_label("username").fill("ann1")
                page.get_by_label("password").fill(ex.passwords["ann1"])
                page.get_by_role("button", name="Log in").click()
                expect(page.locator("#intro")).to_contain_text("Your ratings are stored", timeout=30_000)
                expect(page.locator("#annotate")).to_be_hidden()
                shot(page, "consent-and-instructions")
                page.locator("#start").click()
                # one practice item with feedback, then the study
                expect(page.locator("#progress")).to_contain_text("Practice 1 of 1", timeout=30_000)
                expect(page.locator("#caption textarea")).to_have_value("a plate of spaghetti")
                page.locator("#precision label").filter(has_text="partly right").click()
                page.locator("#recall label").filter(has_text="covers about half").click()
                page.locator("#submit").click()
                expect(page.locator("#progress")).to_contain_text("Item 1 of 6", timeout=30_000)
                expect(page.locator("#status")).to_contain_text("Not quite.")
                expect(page.locator("#status")).to_contain_text("Nothing in the image is food.")
                expect(page.locator("#image img")).to_be_visible()
                above_fold(page, 900)
                shot(page, "item-1440x900")
                page.set_viewport_size({"width": 1366, "height": 768})
                page.wait_for_timeout(300)
                above_fold(page, 768)
                shot(page, "item-1366x768")

                # incomplete: the reason next to the missing field, the page stays usable
                page.locator("#precision label").filter(has_text="partly right").click()
                page.locator("#submit").click()
                expect(page.locator("#recall_reason")).to_contain_text("Choose a rating for Recall", timeout=30_000)
                expect(page.locator("#status")).to_contain_text("Not saved")
                expect(page.locator("#precision_reason")).to_be_hidden()
                assert page.get_by_text("Error", exact=True).count() == 0
                shot(page, "incomplete-submit-reason")
                page.keyboard.press("r")  # recall 4 by key: the radios are not covered by an overlay
                expect(page.locator("#recall input[value='4']")).to_be_checked()
                assert db_rows() == []

                # the server restarts while the ratings are on screen: submitting still works, nothing is lost
                stop_process(proc)
                proc = serve_in_subprocess(ex.path, port, log, append=True)
                _wait_up(url, proc, log)
                page.locator("#submit").click()
                expect(page.locator("#progress")).to_contain_text("Item 2 of 6", timeout=30_000)
                assert db_rows() == [{"conciseness": 0, "fluency": 0, "precision": 3, "recall": 4}]
                shot(page, "after-restart-saved")

                # the session ends (expired, password changed): log in again, the entered ratings are then sent
                page.locator("#precision label").filter(has_text="everything said").click()
                page.locator("#recall label").filter(has_text="covers about half").click()
                page.locator("#fluency input").check()
                db = sqlite3.connect(tmp_path / "ratings.db", timeout=30)
                db.execute("DELETE FROM sessions")
                db.commit()
                db.close()
                page.locator("#submit").click()
                expect(page.locator("#relogin")).to_be_visible(timeout=30_000)
                expect(page.locator("#precision input[value='5']")).to_be_checked()  # still on the page
                shot(page, "session-ended-asks-to-log-in")
                page.get_by_label("relogin username").fill("ann1")
                page.get_by_label("relogin password").fill("wrong-password")
                page.get_by_role("button", name="Log in and continue").click()
                expect(page.locator("#relogin")).to_contain_text("Wrong name or password")
                page.get_by_label("relogin password").fill(ex.passwords["ann1"])
                page.get_by_role("button", name="Log in and continue").click()
                expect(page.locator("#relogin")).to_have_count(0, timeout=30_000)
                expect(page.locator("#progress")).to_contain_text("Item 3 of 6", timeout=30_000)
                assert db_rows()[-1] == {"conciseness": 0, "fluency": 1, "precision": 5, "recall": 3}
                shot(page, "relogged-in-rating-sent")

                # report a broken image needs a confirmation
                page.locator("#broken").click()
                expect(page.locator("#confirm_broken")).to_be_visible()
                shot(page, "broken-image-confirmation")
                page.locator("#broken_no").click()
                expect(page.locator("#confirm_broken")).to_be_hidden()
                assert len(db_rows()) == 2

                # the instructions stay reachable
                page.locator("#instructions_btn").click()
                expect(page.locator("#intro")).to_contain_text("what the caption says", timeout=30_000)
                shot(page, "instructions-later")
                page.locator("#start").click()
                expect(page.locator("#progress")).to_contain_text("Item 3 of 6", timeout=30_000)

                # logout ends the session and returns to the login page
                page.locator("#logout").click()
                expect(page.get_by_role("button", name="Log in")).to_be_visible(timeout=30_000)
                assert page.request.get(url + "config").status == 401
                shot(page, "logged-out")
            finally:
                browser.close()
    finally:
        stop_process(proc)
    assert outside == [], outside
    assert len(list(out.glob("*.png"))) == 10
    assert "practice" not in json.dumps(db_rows())  # practice answers are not ratings

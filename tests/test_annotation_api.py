"""The running app through its HTTP API (gradio_client, httpx): a full campaign, export, login and blinding rules.

One in-process server is shared by the module (starting Gradio costs seconds on a loaded machine).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import re
import sys
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("gradio")
httpx = pytest.importorskip("httpx")
from gradio_client import Client  # noqa: E402

from annotation.example import make_campaign  # noqa: E402

SYSTEMS = ("sysAlphaQX7", "sysBetaQX7")
SCRIPT_CAPTION = "<script>window.__pwned = 1; alert('xss')</script> a dog on a bench"
N_IMAGES = 20  # x 2 systems = 40 items; 3 raters per item and 3 annotators: everyone rates all 40
ANNOTATORS = ("ann1", "ann2", "ann3")


def _karpathy_pool(root: Path | None, n: int):
    if root is None:
        return None
    data = json.loads((root / "coco-karpathy-test" / "coco_test.json").read_text())
    from capeval.records import normalize_image_id

    return [(normalize_image_id(d["image"]), d["caption"]) for d in data[:n]]


_NET = {"on": False, "outside": []}


def _audit(event: str, args: tuple) -> None:
    """Record every DNS lookup / connect leaving loopback while this module's server runs."""
    if not _NET["on"] or event not in ("socket.getaddrinfo", "socket.connect"):
        return
    host = args[0] if event == "socket.getaddrinfo" else (args[1][0] if isinstance(args[1], tuple) else args[1])
    if isinstance(host, bytes):
        host = host.decode()
    if str(host) not in ("127.0.0.1", "localhost", "::1", "0.0.0.0") and not str(host).startswith("/"):
        _NET["outside"].append(f"{event} {host}")


sys.addaudithook(_audit)


@pytest.fixture(scope="module")
def server(tmp_path_factory, request):
    try:
        shared = request.getfixturevalue("shared_datasets")
    except pytest.skip.Exception:
        shared = None
    root = tmp_path_factory.mktemp("campaign")
    pool = _karpathy_pool(shared, N_IMAGES)
    first_id = pool[0][0] if pool else "100000"
    ex = make_campaign(root, n_images=N_IMAGES, systems=SYSTEMS, rubric="flickr8k", annotators=ANNOTATORS,
                       raters_per_item=3, real_captions=pool, extra_captions={SYSTEMS[0]: {first_id: SCRIPT_CAPTION}})
    from annotation.app import launch
    from annotation.service import open_campaign

    _NET["on"] = True
    svc = open_campaign(ex.path).service
    running = launch(svc, port=None, prevent_thread_lock=True, quiet=True)
    yield {"url": running.url, "ex": ex, "svc": svc, "responses": []}
    running.close()
    svc.close()
    _NET["on"] = False


def client(server, user: str) -> Client:
    return Client(server["url"], auth=(user, server["ex"].passwords[user]), verbose=False, download_files=False)


def screen(out: tuple) -> dict:
    """Name the outputs of /current, /submit, /back (layout outputs are not part of the API)."""
    progress, _bar, status, image, cap_a, _cap_b, token, rating, comment, _reason = out
    return {"progress": progress, "status": status, "image": image, "caption": cap_a, "token": token,
            "rating": rating, "comment": comment}


def test_full_campaign_export_equals_submissions_row_for_row(server, tmp_path):
    def run(user: str):
        c = client(server, user)
        s = screen(c.predict(api_name="/current"))
        server["responses"].append(json.dumps(s))
        sent = []
        k = 0
        while s["token"]:
            assert s["progress"].startswith(f"Item {k + 1} of 40")
            rating = str(1 + (hash((user, s["token"])) % 4))
            sent.append((user, s["token"], "rating", float(rating)))
            out = screen(c.predict(s["token"], rating, "", "", api_name="/submit"))
            server["responses"].append(json.dumps(out))
            if k == 5:  # a resent request (double click) is a no-op
                again = screen(c.predict(s["token"], rating, "", "", api_name="/submit"))
                assert again["token"] == out["token"] and again["status"] == "Already saved."
            s = out
            k += 1
        assert "All 40 items done" in s["progress"] and s["token"] == ""
        return sent

    with cf.ThreadPoolExecutor(3) as pool:
        sent = [row for rows in pool.map(run, ANNOTATORS) for row in rows]
    assert len(sent) == 120

    admin = client(server, "boss")
    path = admin.predict("csv", api_name="/admin_export")
    import pandas as pd

    fpath = path if isinstance(path, str) else path["path"]
    df = pd.read_csv(fpath)
    exported = sorted(zip(df["rater"], df["item"], df["criterion"], df["rating"].astype(float)))
    assert exported == sorted(sent)
    assert set(df["system"]) == set(SYSTEMS) and (df["scale"] == "1-4").all()
    assert df.groupby(["system"]).size().to_dict() == {SYSTEMS[0]: 60, SYSTEMS[1]: 60}
    # every caption exported is the one of its (system, image)
    ex = server["ex"]
    assert all(ex.systems[s][str(i)] == c for s, i, c in zip(df["system"], df["image_id"], df["caption"]))
    # CLI-path export reads the same rows
    from annotation.service import export_campaign

    p, n = export_campaign(ex.path, tmp_path / "r.jsonl")
    assert n == 120 and len(p.read_text().splitlines()) == 120

    summ = admin.predict(api_name="/admin_summary")
    per_ann = summ[0]
    assert [row[1] for row in per_ann["data"]] == [40, 40, 40]


def _login(server, user: str) -> httpx.Client:
    h = httpx.Client(base_url=server["url"], timeout=30)
    r = h.post("/login", data={"username": user, "password": server["ex"].passwords[user]})
    assert r.status_code == 200, r.text
    return h


def test_no_access_without_login(server):
    url = server["url"]
    assert httpx.get(url + "config", timeout=30).status_code == 401
    assert httpx.get(url + "gradio_api/info", timeout=30).status_code == 401
    r = httpx.post(url + "gradio_api/queue/join", json={"data": [], "fn_index": 0, "session_hash": "x"}, timeout=30)
    assert r.status_code == 401
    bad = httpx.Client(base_url=url, timeout=30)
    assert bad.post("/login", data={"username": "ann1", "password": "wrong-password"}).status_code >= 400
    assert bad.get("/config").status_code == 401
    with pytest.raises(Exception):
        Client(url, verbose=False, download_files=False).predict(api_name="/current")


def test_annotator_cannot_read_others_ratings_or_export(server):
    from gradio_client.exceptions import AppError

    c = client(server, "ann1")
    with pytest.raises(AppError, match="admin"):
        c.predict("csv", api_name="/admin_export")
    with pytest.raises(AppError, match="admin"):
        c.predict(api_name="/admin_summary")
    svc = server["svc"]
    other_items = set(_queue(svc, "ann2")) - set(_queue(svc, "ann1"))
    # in this campaign everyone rates everything; a made-up item id is refused like another's item
    for token in list(other_items)[:1] + ["0123456789ab"]:
        with pytest.raises(AppError, match="not one of yours"):
            c.predict(token, "3", "", "", api_name="/submit")
        with pytest.raises(AppError, match="not one of yours"):
            c.predict(token, api_name="/back")
    with pytest.raises(AppError, match="malformed"):
        c.predict("../../ratings.db", "3", "", "", api_name="/submit")


def _queue(svc, annotator):
    import sqlalchemy as sa

    from annotation.store import assignments_t, items_t

    with svc.store.engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.select(items_t.c.public_id).join(
            assignments_t, assignments_t.c.item_id == items_t.c.id).where(assignments_t.c.annotator == annotator)
            .order_by(assignments_t.c.position))]


def test_path_traversal_is_refused(server):
    h = _login(server, "ann1")
    ex = server["ex"]
    img_dir = ex.path.parent / "images"
    shown = screen(client(server, "ann1").predict("", api_name="/back"))["image"]  # works when done too
    assert h.get(shown["url"]).status_code == 200  # images are served (so the refusals below mean something)
    one = sorted(img_dir.iterdir())[0]
    for target in [str(one), str(ex.path), str(ex.path.parent / "ratings.db"), f"{img_dir}/../campaign.yaml",
                   f"{img_dir}/../ratings.db", "/etc/passwd", "../../../../etc/passwd",
                   f"{img_dir}/%2e%2e/campaign.yaml"]:
        r = h.get(f"/gradio_api/file={target}")
        assert r.status_code in (403, 404), (target, r.status_code)
        assert "sysAlphaQX7" not in r.text and "root:" not in r.text


def test_script_caption_is_returned_as_plain_text(server):
    c = client(server, "ann3")
    svc = server["svc"]
    row = next(r for r in svc.store.all_ratings() if r["caption"] == SCRIPT_CAPTION and r["annotator"] == "ann3")
    queue = _queue(svc, "ann3")  # in queue order; /back shows the item before the given one
    k = queue.index(row["public_id"])
    s = screen(c.predict(queue[k + 1] if k + 1 < len(queue) else "", api_name="/back"))
    assert s["caption"] == SCRIPT_CAPTION  # a Textbox value: the browser shows it as text (see the browser test)


def test_system_names_appear_nowhere_the_browser_can_see(server):
    h = _login(server, "ann2")
    blobs = [h.get("/").text, h.get("/config").text, h.get("/gradio_api/info").text,
             h.get("/gradio_api/info?all_endpoints=true").text]
    c = client(server, "ann2")
    blobs.append(json.dumps(c.predict(api_name="/current"), default=str))
    blobs.append(json.dumps(c.predict("", api_name="/back"), default=str))
    blobs.extend(server["responses"])  # every API answer recorded in the full-campaign test (when it ran first)
    assert len(blobs) >= 6
    text = "\n".join(blobs)
    for name in (*SYSTEMS, "QX7"):
        assert name not in text
    assert re.search(r"sys(Alpha|Beta)", text) is None
    # the admin sees them: the check above can fail
    admin_view = json.dumps(client(server, "boss").predict(api_name="/admin_summary"), default=str)
    assert SYSTEMS[0] in admin_view


def test_server_and_clients_make_no_outside_requests(server):
    c = client(server, "ann1")
    c.predict(api_name="/current")
    assert _NET["outside"] == []

"""Study features without a server: blinding, timing, consent, annotator quality, agreement CIs, throttling, exports,
the YAML loader's limits and the users/status commands."""

from __future__ import annotations

import io
import math
import sys

import numpy as np
import pandas as pd
import pytest

from annotation.agreement import alpha_bootstrap, krippendorff_alpha
from annotation.auth import LoginThrottle
from annotation.blinding import distinguishability, normalise_caption
from annotation.campaign import safe_yaml
from annotation.example import make_campaign
from annotation.export import alpha_text, csv_safe, write_judgments
from annotation.service import Refused, open_campaign


# ------------------------------------------------------------------ blinding
@pytest.mark.parametrize("raw, shown", [
    ("A man riding a horse on a beach.", "a man riding a horse on a beach"),
    ("a dog on a bench", "a dog on a bench"),
    ("Two  people , standing   outside !", "two people, standing outside"),
    ("A clock tower .", "a clock tower"),
    ("...", "..."),  # nothing left after stripping: keep the original rather than show nothing
])
def test_normalise_caption(raw, shown):
    assert normalise_caption(raw) == shown


def test_distinguishability_reports_the_tells_before_and_after():
    rows = [("ref", "A dog runs."), ("ref", "A cat sits on a mat."), ("sys", "a dog running"), ("sys", "a cat")]
    df = distinguishability(rows, normalised=True).set_index("system")
    assert df.loc["ref", "capitalised_raw"] == 1.0 and df.loc["ref", "final_punct_raw"] == 1.0
    assert df.loc["ref", "capitalised_shown"] == 0.0 and df.loc["ref", "final_punct_shown"] == 0.0
    assert df.loc["ref", "mean_words"] == 4.5 and df.loc["sys", "mean_words"] == 2.5
    raw = distinguishability(rows, normalised=False).set_index("system")
    assert raw.loc["ref", "capitalised_shown"] == 1.0  # without the option the tell stays


def test_annotators_see_normalised_captions_and_admins_the_blinding_table(tmp_path):
    ex = make_campaign(tmp_path, n_images=3, annotators=("ann1",), raters_per_item=1,
                       extra_captions={"sysAlpha": {"100000": "A Dog On A Bench."}})
    svc = open_campaign(ex.path).service
    try:
        shown = []
        while not (s := svc.current("ann1")).done:
            shown.extend(s.captions)
            svc.submit("ann1", s.public_id, {"rating": "3"})
        assert "a dog on a bench" in shown and "A Dog On A Bench." not in shown
        table = svc.blinding("boss").set_index("system")
        assert table.loc["sysAlpha", "capitalised_raw"] > 0 and table.loc["sysAlpha", "capitalised_shown"] == 0
    finally:
        svc.close()


# ------------------------------------------------------------------ timing, consent, time left
def test_time_on_task_is_stored_and_exported(tmp_path):
    ex = make_campaign(tmp_path, n_images=4, annotators=("ann1",), raters_per_item=1)
    svc = open_campaign(ex.path).service
    try:
        s = svc.current("ann1")
        svc.submit("ann1", s.public_id, {"rating": "2"}, active_ms="4200")
        for _ in range(3):
            s = svc.current("ann1")
            svc.submit("ann1", s.public_id, {"rating": "3"}, active_ms=1000)
        with pytest.raises(Refused, match="milliseconds"):
            svc.submit("ann1", svc.current("ann1").public_id, {"rating": "3"}, active_ms="soon")
        df = svc.judgments("boss")
        first = df.iloc[0]
        assert first["active_seconds"] == pytest.approx(4.2)
        assert first["shown_at"] <= first["submitted_at"] and first["seconds"] >= 0
        assert svc.current("ann1").seconds_left == pytest.approx(1.0 * 4)  # median pace x items left
        assert "about" in svc.current("ann1").progress or "under a minute" in svc.current("ann1").progress
    finally:
        svc.close()


def test_consent_is_required_once_and_recorded(tmp_path):
    import yaml

    ex = make_campaign(tmp_path, n_images=2, annotators=("ann1",), raters_per_item=1)
    doc = yaml.safe_load(ex.path.read_text())
    doc.update(instructions="Rate **carefully**.", consent="I agree to take part.")
    ex.path.write_text(yaml.safe_dump(doc))
    svc = open_campaign(ex.path).service
    try:
        intro = svc.intro("ann1")
        assert "Rate **carefully**." in intro and "I agree to take part." in intro
        with pytest.raises(Refused, match="consent"):
            svc.submit("ann1", svc.current("ann1").public_id, {"rating": "3"})
        first = svc.agree("ann1")
        assert not first.done and svc.intro("ann1") is None
        svc.submit("ann1", first.public_id, {"rating": "3"})
    finally:
        svc.close()


# ------------------------------------------------------------------ quality and agreement
def test_alpha_bootstrap_ci_brackets_the_estimate_and_is_seeded():
    rng = np.random.default_rng(4)
    truth = rng.integers(1, 6, size=80)
    data = np.clip(truth[None, :] + rng.integers(-1, 2, size=(3, 80)), 1, 5).astype(float)
    a, lo, hi = alpha_bootstrap(data.tolist(), "ordinal", n_boot=400, seed=1)
    assert a == pytest.approx(krippendorff_alpha(data.tolist(), "ordinal"))
    assert lo < a < hi and hi - lo < 0.3
    assert alpha_bootstrap(data.tolist(), "ordinal", n_boot=400, seed=1) == (a, lo, hi)
    # more items, narrower interval (resampling items, not ratings)
    _, lo2, hi2 = alpha_bootstrap(np.tile(data, 4).tolist(), "ordinal", n_boot=400, seed=1)
    assert hi2 - lo2 < hi - lo
    one_item = [[1, None], [2, None]]
    assert math.isnan(alpha_bootstrap(one_item, "ordinal")[1])


def test_alpha_is_na_with_too_few_items_not_zero():
    assert alpha_text(float("nan"), float("nan"), float("nan"), 0) == "n/a (too few items with 2+ raters)"
    assert alpha_text(0.0, float("nan"), float("nan"), 3).startswith("n/a")
    assert alpha_text(0.61234, 0.5, 0.7, 40) == "0.612 [0.50, 0.70]"


def test_quality_flags_straight_lining_and_leave_one_out_alpha(tmp_path):
    ex = make_campaign(tmp_path, n_images=12, annotators=("good1", "good2", "lazy"), raters_per_item=3)
    svc = open_campaign(ex.path).service
    try:
        truth = {}
        for a in ("good1", "good2", "lazy"):
            while not (s := svc.current(a)).done:
                t = truth.setdefault(s.public_id, str(1 + len(truth) % 4))
                svc.submit(a, s.public_id, {"rating": "4" if a == "lazy" else t}, active_ms=5000)
        q = svc.summary("boss").per_annotator.set_index("annotator")
        assert q.loc["lazy", "flags"] == "straight-lining" and q.loc["lazy", "top_value_share"] == 1.0
        assert q.loc["good1", "flags"] == ""
        # without the lazy rater the others agree perfectly; without a good one, agreement drops
        assert q.loc["lazy", "alpha_without"] == pytest.approx(1.0)
        assert q.loc["good1", "alpha_without"] < 0.5
        alpha = svc.summary("boss").alpha.set_index("criterion")
        assert alpha.loc["rating", "ci_low"] <= alpha.loc["rating", "alpha"] <= alpha.loc["rating", "ci_high"]
    finally:
        svc.close()


# ------------------------------------------------------------------ throttle
def test_throttle_locks_a_name_then_releases_it():
    t = LoginThrottle(max_failures=3, lockout=60, window=600, ip_max_failures=10)
    assert t.failed("bob", "1.2.3.4", 0) == 0 and t.failed("bob", "1.2.3.4", 1) == 0
    assert t.failed("bob", "1.2.3.4", 2) == 60
    assert t.retry_after("bob", "9.9.9.9", 30) == pytest.approx(32)
    assert t.retry_after("alice", "9.9.9.9", 30) == 0
    assert t.retry_after("bob", "9.9.9.9", 63) == 0
    for k in range(10):  # an address guessing many names is locked as a whole
        t.failed(f"user{k}", "6.6.6.6", 100 + k)
    assert t.retry_after("anyone", "6.6.6.6", 110) > 0


# ------------------------------------------------------------------ exports and YAML
def test_csv_cells_that_would_run_as_formulas_are_quoted(tmp_path):
    df = pd.DataFrame({"comment": ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "\tx", "fine", "a=b"], "rating": [1.0] * 7})
    out = csv_safe(df)
    assert out["comment"].tolist() == ["'=1+1", "'+cmd", "'-2+3", "'@SUM(A1)", "'\tx", "fine", "a=b"]
    assert out["rating"].tolist() == [1.0] * 7
    write_judgments(df, tmp_path / "j.jsonl")  # JSONL keeps the text exactly
    assert pd.read_json(tmp_path / "j.jsonl", lines=True)["comment"][0] == "=1+1"


def test_yaml_limits():
    import yaml

    assert safe_yaml("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}  # ordinary anchors still work
    with pytest.raises(yaml.YAMLError, match="duplicate key 'b'"):
        safe_yaml("a: 1\nb: 2\nb: 3\n")
    many = "x: &x 1\n" + "".join(f"k{i}: *x\n" for i in range(150))
    with pytest.raises(yaml.YAMLError, match="aliases"):
        safe_yaml(many)


# ------------------------------------------------------------------ CLI tables
def test_status_and_users_tables_keep_every_number_at_80_columns(tmp_path, monkeypatch, capsys):
    from capeval.cli import main

    ex = make_campaign(tmp_path, n_images=6, annotators=("annotator_with_long_name", "ann2"), raters_per_item=2)
    svc = open_campaign(ex.path).service
    try:
        while not (s := svc.current("ann2")).done:
            svc.submit("ann2", s.public_id, {"rating": "2"})
    finally:
        svc.close()
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["annotate", "status", str(ex.path)]) == 0
    out = capsys.readouterr().out
    assert "annotator_with_long_name" in out and "100.0" in out and "median_seconds" in out.replace("\n", "")
    assert "…" not in out
    assert main(["annotate", "status", str(ex.path), "--format", "csv"]) == 0
    csv = capsys.readouterr().out
    assert "annotator,done,assigned" in csv
    monkeypatch.setattr(sys, "stdin", io.StringIO("a-new-password-9\n"))
    assert main(["annotate", "users", "reset", str(ex.path), "ann2", "--password-stdin"]) == 0
    assert main(["annotate", "users", "list", str(ex.path), "--format", "csv"]) == 0
    listed = capsys.readouterr().out
    assert "ann2,annotator,True,False,0,12,12" in listed


# ------------------------------------------------------------------ work management
def test_replace_an_annotator_and_top_up_broken_items(tmp_path, capsys):
    import yaml

    from capeval.cli import main

    from annotation.service import add_user

    ex = make_campaign(tmp_path, n_images=4, annotators=("ann1", "ann2"), raters_per_item=1)
    svc = open_campaign(ex.path).service  # a running server's service: it must see the changes
    try:
        first = svc.current("ann1")
        svc.submit("ann1", first.public_id, {"rating": "2"})
        broken = svc.current("ann1")
        svc.report_broken("ann1", broken.public_id, "grey box")
        left_ann1 = svc.current("ann1").total - 2
        doc = yaml.safe_load(ex.path.read_text())
        doc["annotators"] = ["ann1", "ann2", "ann3"]  # a new annotator joins the running campaign
        ex.path.write_text(yaml.safe_dump(doc))
        add_user(ex.path, "ann3", "correct-horse-3")
        assert main(["annotate", "reassign", str(ex.path), "--from", "ann1", "--to", "ann3", "--broken"]) == 0
        assert f"moved {left_ann1} unrated items; added 1 assignments" in capsys.readouterr().out
        svc.store._version_checked = -1e9  # (the server re-reads queues within 3 s)
        s1 = svc.current("ann1")
        assert s1.done and s1.total == 2  # keeps what it rated or reported
        got = []
        while not (s := svc.current("ann3")).done:
            got.append(s.public_id)
            svc.submit("ann3", s.public_id, {"rating": "3"})
        assert len(got) >= left_ann1
        rows = svc.store.all_ratings()
        rated = {r["public_id"] for r in rows if not r["broken"]}
        assert broken.public_id in rated or broken.public_id in {e.public_id for e in svc.store._queue("ann2")}
        # every item now has (or is assigned to) one rater without a broken report
        summary = svc.summary("boss").per_annotator.set_index("annotator")
        assert summary.loc["ann3", "done"] == len(got)
    finally:
        svc.close()


def test_behind_a_reverse_proxy_cookies_are_secure_and_links_use_the_public_url(tmp_path):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("gradio")
    from annotation.app import SCREEN_FIELDS, launch

    ex = make_campaign(tmp_path, n_images=2, annotators=("a1",), raters_per_item=1)
    svc = open_campaign(ex.path).service
    run = launch(svc, port=None, prevent_thread_lock=True, quiet=True, trust_proxy=True, root_path="/rating")
    try:
        h = httpx.Client(base_url=run.url, timeout=30)
        hdr = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "rate.example.org", "X-Forwarded-For": "203.0.113.9"}
        r = h.post("/login", data={"username": "a1", "password": ex.passwords["a1"]}, headers=hdr)
        cookie = r.headers["set-cookie"]
        assert r.status_code == 200 and "Secure" in cookie and "Path=/rating/" in cookie and "HttpOnly" in cookie
        ck = {"Cookie": "capeval_session=" + cookie.split("=", 1)[1].split(";")[0]}
        body = {"data": [], "session_hash": "proxy-1"}
        r = h.post("/gradio_api/run/current", json=body, headers={**hdr, **ck, "Origin": "https://rate.example.org"})
        out = r.json()["data"]
        assert out[SCREEN_FIELDS.index("image")]["url"] == f"https://rate.example.org/rating/image/{out[6]}"
        r = h.post("/gradio_api/run/current", json=body, headers={**hdr, **ck, "Origin": "https://evil.example"})
        assert r.status_code == 403
    finally:
        run.close()
        svc.close()


def test_practice_items_come_first_with_feedback_and_stay_out_of_the_study(tmp_path):
    import yaml

    ex = make_campaign(tmp_path, n_images=2, annotators=("ann1",), raters_per_item=1)
    doc = yaml.safe_load(ex.path.read_text())
    doc["practice"] = [
        {"image_id": ex.image_ids[0], "caption": "A plate of spaghetti.", "expect": {"rating": [1]},
         "explain": "Nothing in the image is food."},
        {"image_id": ex.image_ids[1], "caption": "a coloured rectangle", "expect": {"rating": [3, 4]}},
    ]
    ex.path.write_text(yaml.safe_dump(doc))
    svc = open_campaign(ex.path).service
    try:
        s = svc.current("ann1")
        assert s.progress == "Practice 1 of 2 (not part of the study)" and s.captions == ("a plate of spaghetti",)
        assert svc.image_file("ann1", s.public_id).name.startswith("COCO_val2014_")
        with pytest.raises(Refused):
            svc.report_broken("ann1", s.public_id)
        _, s2 = svc.submit("ann1", s.public_id, {"rating": "3"})
        assert "Not quite." in s2.message and "expected 1" in s2.message and "Nothing in the image is food." in s2.message
        assert s2.progress.startswith("Practice 2 of 2")
        _, s3 = svc.submit("ann1", s2.public_id, {"rating": "4"})
        assert "As expected." in s3.message and s3.progress.startswith("Item 1 of 4")
        while not (s := svc.current("ann1")).done:
            svc.submit("ann1", s.public_id, {"rating": "2"})
        assert len(svc.judgments("boss")) == 4  # practice answers are not judgments
        assert svc.summary("boss").per_annotator.set_index("annotator").loc["ann1", "practice_correct"] == "1/2"
    finally:
        svc.close()

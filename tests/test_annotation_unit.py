"""Annotation library without a server: agreement figures, passwords, campaign checks, assignment, storage, export."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from annotation import auth
from annotation.agreement import krippendorff_alpha, weighted_kappa
from annotation.assign import assign, plan_campaign
from annotation.campaign import load_campaign, write_template
from annotation.example import make_campaign
from annotation.export import JUDGMENT_COLUMNS
from annotation.images import build_index, check_image, safe_join
from annotation.rubrics import RUBRICS
from annotation.service import Forbidden, Refused, add_user, export_campaign, open_campaign
from annotation.store import ItemSpec
from capeval.errors import CapevalError, InputError


# ------------------------------------------------------------------ agreement
@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_alpha_matches_krippendorff_package(level):
    krippendorff = pytest.importorskip("krippendorff")
    rng = np.random.default_rng(3)
    truth = rng.integers(1, 6, size=60)
    data = np.clip(truth[None, :] + rng.integers(-1, 2, size=(4, 60)), 1, 5).astype(float)
    data[rng.random(data.shape) < 0.25] = np.nan  # missing ratings
    ours = krippendorff_alpha(data.tolist(), level)
    ref = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert ours == pytest.approx(ref, abs=1e-12)


def test_alpha_krippendorff_2011_worked_example():
    # Krippendorff (2011) "Computing Krippendorff's alpha-reliability", 4 observers x 12 units, nominal alpha = 0.743
    nan = None
    data = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ]
    assert krippendorff_alpha(data, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(data, "interval") == pytest.approx(0.849, abs=5e-4)


def test_alpha_perfect_agreement_is_one_and_no_variation_is_nan():
    assert krippendorff_alpha([[1, 2, 3, 4], [1, 2, 3, 4]], "ordinal") == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha([[2, 2, 2], [2, 2, 2]], "ordinal"))


def test_weighted_kappa_hand_computed():
    # 2 raters, 3 levels, 10 items. Observed table (rows rater a, cols rater b):
    # [[2,1,0],[1,3,1],[0,1,1]] ; marginals a=(3,5,2) b=(3,5,2) /10
    a = [1, 1, 1, 2, 2, 2, 2, 2, 3, 3]
    b = [1, 1, 2, 1, 2, 2, 2, 3, 2, 3]
    # unweighted: po = 0.6, pe = .09+.25+.04 = .38 -> (0.6-0.38)/0.62
    assert weighted_kappa(a, b, None) == pytest.approx((0.6 - 0.38) / 0.62)
    # linear weights w=|i-j|/2: observed disagreement = (4 * 0.5)/10 = 0.2
    # expected: sum_ij w_ij pa_i pb_j = 0.5*(2*.3*.5 + 2*.5*.2) + 1*(2*.3*.2) = 0.5*0.5 + 0.12 = 0.37
    assert weighted_kappa(a, b, "linear") == pytest.approx(1 - 0.2 / 0.37)
    # quadratic w=(|i-j|/2)^2: observed 0.25*0.4 = 0.1 ; expected 0.25*0.5 + 1*0.12 = 0.245
    assert weighted_kappa(a, b, "quadratic") == pytest.approx(1 - 0.1 / 0.245)


def test_weighted_kappa_uses_declared_levels():
    # with levels 1..5 declared, a 1-vs-3 disagreement weighs (2/4)^2 rather than (1/1)^2
    k_obs = weighted_kappa([1, 3, 1, 3], [1, 3, 3, 1], "quadratic")
    k_lv = weighted_kappa([1, 3, 1, 3], [1, 3, 3, 1], "quadratic", levels=[1, 2, 3, 4, 5])
    assert k_obs == pytest.approx(0.0)
    assert k_lv == pytest.approx(0.0)  # chance-level either way: weights cancel in the ratio
    assert weighted_kappa([1, 2, 5], [1, 3, 5], "quadratic", levels=[1, 2, 3, 4, 5]) > 0.9


# ------------------------------------------------------------------ passwords
def test_password_hash_is_salted_and_verifies():
    h1, h2 = auth.hash_password("correct-horse"), auth.hash_password("correct-horse")
    assert h1 != h2 and "correct-horse" not in h1
    assert auth.verify_password("correct-horse", h1)
    assert not auth.verify_password("correct-hors", h1)
    assert not auth.verify_password("x" * 5000, h1)
    assert not auth.verify_password("correct-horse", "garbage")
    with pytest.raises(ValueError):
        auth.hash_password("short")


# ------------------------------------------------------------------ campaign file
def test_template_parses_once_its_files_exist(tmp_path):
    p = write_template(tmp_path / "campaign.yaml")
    (tmp_path / "images").mkdir()
    with pytest.raises(InputError):
        write_template(p)
    c = load_campaign(p)
    assert c.rubric.name == "thumb" and c.raters_per_item == 3 and c.annotators == ["alice", "bob", "carol"]
    assert [s.name for s in c.systems] == ["baseline", "tuned", "reference"]
    assert c.database_url.startswith("sqlite:///") and c.database_url.endswith("ratings.db")


@pytest.mark.parametrize("patch, where", [
    ({"rubric": "stars"}, "rubric"),
    ({"raters_per_item": 9}, "raters_per_item"),
    ({"systems": []}, "systems"),
    ({"images": {"folder": "nope"}}, "images.folder"),
    ({"images": {"folder": "."}}, "images.folder"),
    ({"colour": "red"}, "colour"),
    ({"gold": [{"image_id": 1, "caption": "x", "expect": {"rating": 9}}]}, "gold[0].expect.rating"),
    ({"admins": ["ann1"]}, "admins"),
])
def test_bad_campaign_settings_name_the_key(tmp_path, patch, where):
    import yaml

    ex = make_campaign(tmp_path, n_images=2, create_users=False)
    doc = yaml.safe_load(ex.path.read_text())
    doc.update(patch)
    ex.path.write_text(yaml.safe_dump(doc))
    with pytest.raises(InputError) as err:
        load_campaign(ex.path)
    assert where in str(err.value) and str(ex.path) in str(err.value)


def test_malformed_yaml_names_the_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: x\nsystems: [a,\n  b: c\n")
    with pytest.raises(InputError, match=r"c\.yaml, line \d+"):
        load_campaign(p)


# ------------------------------------------------------------------ assignment
def test_every_item_gets_its_raters_and_gold_goes_to_everyone():
    items = [ItemSpec(str(i), f"{i}#0", "s", "cap") for i in range(50)] + [
        ItemSpec("g", "g0", "gold", "x", gold_expect={"rating": [1]})]
    plan = assign(items, ["a", "b", "c", "d"], 3, seed=5)
    counts: dict[int, int] = {}
    for q in plan.queues.values():
        assert len({i for i, _ in q}) == len(q)
        for i, _ in q:
            counts[i] = counts.get(i, 0) + 1
    gold_idx = [i for i, it in enumerate(plan.items) if it.gold_expect is not None]
    assert all(counts[i] == 4 for i in gold_idx)
    assert all(n == 3 for i, n in counts.items() if i not in gold_idx) and len(counts) == 51
    loads = [len(q) for q in plan.queues.values()]
    assert max(loads) - min(loads) <= 1
    again = assign(items, ["a", "b", "c", "d"], 3, seed=5)
    assert again.queues == plan.queues and again.seeds == plan.seeds
    assert assign(items, ["a", "b", "c", "d"], 3, seed=6).queues != plan.queues


def test_pairwise_sides_are_counterbalanced_per_annotator():
    items = [ItemSpec(str(i), f"{i}#0", "x", "c1", f"{i}#1", "y", "c2") for i in range(40)]
    plan = assign(items, ["a", "b"], 2, seed=1, pairwise=True)
    for q in plan.queues.values():
        assert sum(s for _, s in q) == len(q) // 2


def test_items_come_from_caption_files_and_sampling_is_seeded(tmp_path):
    ex = make_campaign(tmp_path, n_images=12, create_users=False, systems=("sA", "sB", "sC"))
    c = load_campaign(ex.path)
    c.sample_images = 5
    p1, p2 = plan_campaign(c), plan_campaign(c)
    assert len(p1.items) == 15 and [i.image_id for i in p1.items] == [i.image_id for i in p2.items]
    assert {i.system for i in p1.items} == {"sA", "sB", "sC"}
    for it in p1.items:
        assert it.caption == ex.systems[it.system][it.image_id]


# ------------------------------------------------------------------ images
def test_safe_join_refuses_traversal(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "secret.txt").write_text("x")
    (tmp_path / "img" / "a.jpg").write_bytes(b"x")
    assert safe_join(tmp_path / "img", "a.jpg") == (tmp_path / "img" / "a.jpg").resolve()
    for bad in ["../secret.txt", "/etc/passwd", "..\\secret.txt", "a.jpg\x00.png", ""]:
        with pytest.raises(ValueError):
            safe_join(tmp_path / "img", bad)
    (tmp_path / "img" / "link.jpg").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(ValueError):
        safe_join(tmp_path / "img", "link.jpg")
    assert "link" not in " ".join(str(p) for p in build_index(tmp_path / "img").by_id.values())


def test_malformed_image_is_refused_with_a_reason(tmp_path):
    bad = tmp_path / "COCO_val2014_000000000001.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    assert "not a readable image" in check_image(bad)
    ex = make_campaign(tmp_path / "c", n_images=3)
    (tmp_path / "c" / "images" / f"COCO_val2014_{int(ex.image_ids[0]):012d}.jpg").write_bytes(b"broken")
    with pytest.raises(InputError, match="images refused"):
        open_campaign(ex.path)


# ------------------------------------------------------------------ service & store
@pytest.fixture
def svc(tmp_path):
    ex = make_campaign(tmp_path, n_images=6, rubric="thumb", gold=1, annotators=("ann1", "ann2", "ann3"),
                       extra_captions={"sysAlpha": {"100000": "<script>alert('x')</script> a dog"}})
    prep = open_campaign(ex.path)
    yield prep.service
    prep.service.close()


def test_resend_is_noop_and_edit_keeps_history(svc):
    s = svc.current("ann1")
    vals = {"precision": "4", "recall": "3", "fluency": True, "conciseness": False}
    r1, nxt = svc.submit("ann1", s.public_id, vals)
    r2, nxt2 = svc.submit("ann1", s.public_id, vals)
    assert (r1.status, r2.status) == ("saved", "unchanged") and nxt.public_id == nxt2.public_id
    r3, _ = svc.submit("ann1", s.public_id, {**vals, "precision": "2"})
    assert r3.status == "edited"
    assert svc.store.history_count() == 1
    rows = [r for r in svc.store.all_ratings() if r["public_id"] == s.public_id]
    assert len(rows) == 1 and rows[0]["ratings"] == {"precision": 2, "recall": 3, "fluency": 1, "conciseness": 0}
    back = svc.back("ann1", nxt.public_id)
    assert back.public_id == s.public_id and back.previous["precision"] == 2 and back.revisiting


def test_malformed_submissions_are_refused_with_a_message(svc):
    s = svc.current("ann1")
    with pytest.raises(Refused, match="precision"):
        svc.submit("ann1", s.public_id, {"precision": "7", "recall": "3"})
    with pytest.raises(Refused, match="choose a rating"):
        svc.submit("ann1", s.public_id, {"precision": "3"})
    with pytest.raises(Refused, match="malformed item id"):
        svc.submit("ann1", "../../etc", {"precision": "3", "recall": "3"})
    with pytest.raises(Refused, match="limit"):
        svc.submit("ann1", s.public_id, {"precision": "3", "recall": "3"}, "x" * 5000)
    assert svc.store.progress("ann1")[0] == 0


def test_annotator_cannot_touch_another_annotators_items_or_admin(svc):
    s2 = svc.current("ann2")
    svc.submit("ann2", s2.public_id, {"precision": "3", "recall": "3"})
    assert svc.own_ratings("ann1") == [] and len(svc.own_ratings("ann2")) == 1
    other = next(it for it in _queue(svc, "ann2") if it not in _queue(svc, "ann1"))
    with pytest.raises(Refused, match="not one of yours"):
        svc.submit("ann1", other, {"precision": "3", "recall": "3"})
    with pytest.raises(Forbidden):
        svc.summary("ann1")
    with pytest.raises(Forbidden):
        svc.judgments("ann1")
    with pytest.raises(Forbidden):
        svc.current("boss")  # admins do not rate
    with pytest.raises(Forbidden):
        svc.current("stranger")


def _queue(svc, annotator):
    import sqlalchemy as sa

    from annotation.store import assignments_t, items_t

    with svc.store.engine.connect() as c:
        return [r[0] for r in c.execute(sa.select(items_t.c.public_id).join(
            assignments_t, assignments_t.c.item_id == items_t.c.id).where(assignments_t.c.annotator == annotator))]


def test_login_needs_listed_user_and_right_password(svc, tmp_path):
    assert svc.login("ann1", "correct-horse-1")
    assert not svc.login("ann1", "wrong-password")
    assert not svc.login("nobody", "correct-horse-1")
    assert svc.login("boss", "correct-horse-1") and svc.role("boss") == "admin"
    with pytest.raises(InputError, match="not listed"):
        add_user(svc.campaign.path, "mallory", "long-enough-pw")


def test_full_run_exports_judgments_and_scores_gold(svc, tmp_path):
    for a in ("ann1", "ann2", "ann3"):
        while not (s := svc.current(a)).done:
            svc.submit(a, s.public_id, {"precision": {"ann1": "1", "ann2": "5"}.get(a, "2"), "recall": "3"})
    summ = svc.summary("boss")
    acc = dict(zip(summ.per_annotator["annotator"], summ.per_annotator["gold_accuracy"]))
    assert acc == {"ann1": 1.0, "ann2": 0.0, "ann3": 1.0}
    assert set(summ.per_system["system"]) == {"sysAlpha", "sysBeta"} and (summ.per_system["percent"] == 100).all()
    df = svc.judgments("boss")
    assert list(df.columns) == JUDGMENT_COLUMNS
    assert len(df) == 12 * 2 * 4  # 12 items x 2 raters x 4 criteria (gold left out)
    assert set(df["scale"]) == {"1-5", "0-1"} and set(df["criterion"]) == {"precision", "recall", "fluency",
                                                                           "conciseness"}
    assert "<script>alert('x')</script> a dog" in set(df["caption"])
    for suffix in (".csv", ".jsonl", ".parquet"):
        p, n = export_campaign(svc.campaign.path, tmp_path / f"out{suffix}")
        assert n == len(df) and p.stat().st_size > 0
    with pytest.raises(InputError, match="expected .csv"):
        export_campaign(svc.campaign.path, tmp_path / "out.xlsx")


def test_pairwise_preferences_are_stored_in_canonical_order(tmp_path):
    ex = make_campaign(tmp_path, n_images=8, rubric="pairwise", raters_per_item=1, annotators=("ann1",))
    svc = open_campaign(ex.path).service
    try:
        shown = {}
        while not (s := svc.current("ann1")).done:
            # always prefer the caption shown on the left
            shown[s.public_id] = s.captions[0]
            svc.submit("ann1", s.public_id, {"preference": "A"})
        df = svc.judgments("boss")
        winners = df[df["rating"] == 1.0]
        assert len(winners) == 8 and set(winners["caption"]) == set(shown.values())
        assert set(winners["system"]) == {"sysAlpha", "sysBeta"}  # sides were swapped for half the items
        assert (df.groupby("item")["rating"].sum() == 1.0).all()
    finally:
        svc.close()


def test_changed_campaign_setup_is_refused_on_an_existing_database(tmp_path):
    import yaml

    ex = make_campaign(tmp_path, n_images=3)
    open_campaign(ex.path).service.close()
    doc = yaml.safe_load(ex.path.read_text())
    doc["seed"] = 99
    ex.path.write_text(yaml.safe_dump(doc))
    with pytest.raises(CapevalError, match="different campaign setup"):
        open_campaign(ex.path)


def test_rubrics_explain_every_level():
    for r in RUBRICS.values():
        text = r.help_markdown()
        for c in r.criteria:
            for _, expl in c.levels:
                assert expl in text
    assert json.dumps(RUBRICS["flickr8k"].parse({"rating": "4"})) == '{"rating": 4}'


def test_system_names_never_in_annotator_screens(svc):
    seen = []
    while not (s := svc.current("ann2")).done:
        seen.append(repr(s))
        svc.submit("ann2", s.public_id, {"precision": "3", "recall": "3"})
    blob = " ".join(seen)
    assert len(seen) == 9  # 12 items x 2 raters / 3 annotators + 1 gold item
    assert "sysAlpha" not in blob and "sysBeta" not in blob and "gold" not in blob
    # the raw records the server keeps do carry them (so the check above can fail)
    assert "sysAlpha" in repr(svc.store.all_ratings())


def test_export_is_read_by_capeval_correlate_loader(svc, tmp_path):
    judgments = pytest.importorskip("capeval.meta.judgments")
    while not (s := svc.current("ann1")).done:
        svc.submit("ann1", s.public_id, {"precision": "4", "recall": "2", "conciseness": True})
    for suffix in (".csv", ".jsonl", ".parquet"):
        p, n = export_campaign(svc.campaign.path, tmp_path / f"j{suffix}")
        j = judgments.load_judgments(p, criterion="precision")
        assert len(j.frame) == n // 4 and str(j.scale) == "1-5"
        assert set(j.frame["rating"]) == {4.0} and set(j.frame["rater"]) == {"ann1"}
        flags = judgments.load_judgments(p, criterion="conciseness")
        assert str(flags.scale) == "0-1" and set(flags.frame["rating"]) == {1.0}


def test_broken_image_report_moves_on_and_is_listed_not_exported(svc):
    s = svc.current("ann2")
    res, nxt = svc.report_broken("ann2", s.public_id, "all grey")
    assert res.status == "saved" and nxt.public_id != s.public_id and nxt.completed == 1
    summ = svc.summary("boss")
    assert list(summ.broken_reports["comment"]) == ["all grey"]
    assert summ.per_annotator.set_index("annotator").loc["ann2", "broken_reports"] == 1
    assert s.public_id not in set(svc.judgments("boss")["item"])


def test_oversized_caption_in_a_system_file_is_refused(tmp_path):
    ex = make_campaign(tmp_path, n_images=3, create_users=False,
                       extra_captions={"sysBeta": {"100037": "word " * 1000}})
    with pytest.raises(InputError, match=r"characters \(limit 2000\)"):
        open_campaign(ex.path)


def test_coco_images_are_fetched_into_the_cache_through_the_registry(tmp_path, monkeypatch):
    import yaml
    from PIL import Image

    ex = make_campaign(tmp_path / "c", n_images=3, create_users=False)
    mirror = tmp_path / "mirror" / "coco-images" / "val2014"
    mirror.mkdir(parents=True)
    for i in ex.image_ids:
        Image.new("RGB", (40, 30), (10, 200, 10)).save(mirror / f"COCO_val2014_{int(i):012d}.jpg")
    monkeypatch.setenv("CAPEVAL_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("CAPEVAL_HOME", str(tmp_path / "home"))
    doc = yaml.safe_load(ex.path.read_text())
    doc["images"] = {"coco": "val2014"}
    ex.path.write_text(yaml.safe_dump(doc))
    svc = open_campaign(ex.path).service
    try:
        s = svc.current("ann1") if svc.store.user("ann1") else None
        folder = svc.images.folder
        assert (tmp_path / "home") in folder.parents and len(svc.images.by_id) == 3
        assert s is None  # no logins were created; the images alone are what is checked here
    finally:
        svc.close()

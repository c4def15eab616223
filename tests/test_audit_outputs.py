"""Audit output files, the comparison table, the CLI, and bad input (a clear error, the input untouched)."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from capeval.audit import audit_captions, compare_audits, write_audit
from capeval.cli import main
from capeval.records import CaptionSet

REFS = {
    "1": ["A dog catches a frisbee in the park.", "A brown dog jumping for a frisbee on the grass.",
          "a dog leaping to catch a frisbee in it's mouth", "A dog jumps high to catch a frisbee in a park.",
          "A dog catching a a frisbee on a grassy field."],
    "2": ["A man riding a wave on top of a surfboard.", "A surfer rides a large wave in the ocean.",
          "A man on a surfboard riding a wave.", "A MAN SURFING ON A BIG WAVE IN THE OCEAN",
          "A surfer riding a wave with the"],
    "3": ["Two giraffes standing next to a tree.", "Two giraffes eating leaves from a tall tree.",
          "A pair of giraffes by a tree in a zoo.", "There is no picture here to describe with a caption.",
          "Two giraffes standing next to a tree."],
}


@pytest.fixture()
def refs() -> CaptionSet:
    return CaptionSet.from_mapping(REFS, name="toy")


def test_findings_have_spans_into_the_original_text(refs):
    result = audit_captions(refs, progress=False)
    texts = refs.by_id()
    assert result.findings
    for f in result.findings:
        assert texts[f.caption_id].text[f.start:f.end] == f.text
        assert 0.0 <= f.confidence <= 1.0
    cats = {(f.caption_id, f.category) for f in result.findings}
    assert {("1#4", "grammar"), ("2#3", "formatting"), ("2#4", "truncated"), ("3#3", "non_caption"),
            ("3#4", "duplicate")} <= cats


def test_min_confidence_filters(refs):
    low = audit_captions(refs, min_confidence=0.0, progress=False)
    high = audit_captions(refs, min_confidence=0.95, progress=False)
    assert len(high.findings) < len(low.findings)
    assert all(f.confidence >= 0.95 for f in high.findings)


def test_write_audit_files(refs, tmp_path):
    result = audit_captions(refs, progress=False)
    paths = write_audit(result, tmp_path / "out")
    lines = (tmp_path / "out" / "findings.jsonl").read_text().splitlines()
    assert len(lines) == len(result.findings)
    rec = json.loads(lines[0])
    assert set(rec) == {"caption_id", "image_id", "category", "start", "end", "text", "suggestion", "rule",
                        "confidence", "backend"}
    table = pd.read_csv(paths["captions.csv"], keep_default_na=False)
    assert len(table) == len(refs)
    row = table.set_index("caption_id").loc["1#4"]
    assert row["corrected"] == "A dog catching a frisbee on a grassy field."
    md = paths["summary.md"].read_text()
    assert "| spelling |" in md and "| non_caption |" in md
    html = paths["summary.html"].read_text()
    png = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert png and base64.b64decode(png.group(1)).startswith(b"\x89PNG")
    fixed = json.loads(paths["references.fixed.json"].read_text())
    by_id = {str(a["id"]): a["caption"] for a in fixed["annotations"]}
    assert len(by_id) == len(refs)
    assert by_id["1#4"] == "A dog catching a frisbee on a grassy field."
    kept = json.loads(paths["references.kept.json"].read_text())
    kept_ids = {str(a["id"]) for a in kept["annotations"]}
    assert "3#3" not in kept_ids and "2#4" not in kept_ids and "3#4" not in kept_ids
    assert "1#0" in kept_ids and "3#0" in kept_ids  # the first copy of a duplicate stays


def test_kept_never_empties_an_image():
    caps = CaptionSet.from_mapping({"9": ["A a dog.", "the the cat of"]})
    result = audit_captions(caps, progress=False)
    assert {c.image_id for c in result.kept_captions()} == {"9"}


def test_compare_audits_one_column_per_input(refs):
    sys_out = CaptionSet.from_mapping({"1": "a dog with a frisbe", "2": "a man surfing", "3": "two giraffe"},
                                      name="system")
    table = compare_audits([audit_captions(refs, progress=False), audit_captions(sys_out, progress=False)])
    assert list(table.columns) == ["toy", "system"]
    assert table.loc["captions", "system"] == 3
    assert table.loc["spelling", "system"] > 0


def _write_albef(path: Path) -> None:
    doc = [{"image": f"val2014/COCO_val2014_{int(k):012d}.jpg", "caption": v} for k, v in REFS.items()]
    path.write_text(json.dumps(doc))


def test_cli_writes_outputs_and_leaves_input_untouched(tmp_path, capsys):
    src = tmp_path / "refs.json"
    _write_albef(src)
    before = (src.read_bytes(), os.stat(src).st_mtime_ns)
    code = main(["audit-references", str(src), "--out", str(tmp_path / "out"), "-q"])
    assert code == 0
    assert (src.read_bytes(), os.stat(src).st_mtime_ns) == before
    for name in ("findings.jsonl", "captions.csv", "summary.md", "summary.html", "references.fixed.json",
                 "references.kept.json"):
        assert (tmp_path / "out" / name).is_file(), name
    assert "non_caption" in capsys.readouterr().out


def test_cli_compare_several_inputs(tmp_path, capsys):
    src = tmp_path / "refs.json"
    _write_albef(src)
    sys_file = tmp_path / "sys.json"
    sys_file.write_text(json.dumps({"1": "a dog with a frisbe", "2": "a man surfing", "3": "two giraffe"}))
    assert main(["audit-references", str(src), str(sys_file), "--out", str(tmp_path / "o"), "--compare", "-q"]) == 0
    assert (tmp_path / "o" / "refs" / "findings.jsonl").is_file()
    assert (tmp_path / "o" / "sys" / "findings.jsonl").is_file()
    comp = pd.read_csv(tmp_path / "o" / "comparison.csv", index_col=0)
    assert list(comp.columns) == ["refs", "sys"]


def test_bad_input_is_one_clear_error_and_untouched(tmp_path, capsys):
    bad = tmp_path / "broken.json"
    bad.write_text('[{"image": "a.jpg", "caption": ["ok"]}, {"image": "b.jpg"')
    before = (bad.read_bytes(), os.stat(bad).st_mtime_ns)
    code = main(["audit-references", str(bad), "--out", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert "broken.json" in err and "Traceback" not in err
    assert (bad.read_bytes(), os.stat(bad).st_mtime_ns) == before
    assert not (tmp_path / "out" / "findings.jsonl").exists()


def test_bad_backend_and_confidence_are_clear_errors(tmp_path, capsys):
    src = tmp_path / "refs.json"
    _write_albef(src)
    assert main(["audit-references", str(src), "--out", str(tmp_path / "o"), "--grammar-backend", "x", "-q"]) == 2
    assert "grammar backend" in capsys.readouterr().err
    assert main(["audit-references", str(src), "--out", str(tmp_path / "o"), "--min-confidence", "2", "-q"]) == 2
    assert "min_confidence" in capsys.readouterr().err


def test_rescore_impact_scores_all_kept_and_fixed(refs):
    from capeval.audit import rescore_impact

    systems = {
        "good": CaptionSet.from_mapping({"1": "a dog catching a frisbee in a park", "2": "a man riding a wave on a "
                                         "surfboard", "3": "two giraffes standing next to a tree"}),
        "weak": CaptionSet.from_mapping({"1": "an animal", "2": "water", "3": "a tree"}),
    }
    result = audit_captions(refs, progress=False)
    table = rescore_impact(refs, systems, result, progress=False)
    assert list(table["system"]) == ["good", "weak"]
    for v in ("all", "kept", "fixed"):
        assert {f"bleu4_{v}", f"cider_{v}", f"rank_{v}"} <= set(table.columns)
    good = table.set_index("system").loc["good"]
    assert good["rank_all"] == 1 and good["cider_all"] > table.set_index("system").loc["weak", "cider_all"]
    assert good["cider_kept"] != good["cider_all"]  # flagged references were removed
    assert table.attrs["removed_references"] > 0 and table.attrs["fixed_references"] > 0


def test_cli_impact_writes_table(tmp_path, capsys):
    src = tmp_path / "refs.json"
    _write_albef(src)
    sys_file = tmp_path / "good.json"
    sys_file.write_text(json.dumps({"1": "a dog catching a frisbee", "2": "a man surfing a wave",
                                    "3": "two giraffes by a tree"}))
    assert main(["audit-references", str(src), "--out", str(tmp_path / "o"), "--impact", str(sys_file), "-q"]) == 0
    table = pd.read_csv(tmp_path / "o" / "impact.csv")
    assert list(table["system"]) == ["good"]
    assert "metric impact" in capsys.readouterr().out


def test_exclude_captions_reads_only_language_errors(refs, tmp_path):
    """`score --exclude-captions findings.jsonl` drops captions with a language error, not formatting or the
    advisory categories, unless asked for more (`--exclude-categories`)."""
    from capeval.audit.finding import CAPTION_LEVEL
    from capeval.errors import InputError
    from capeval.metrics.engine import read_caption_ids

    result = audit_captions(refs, min_confidence=0.0, progress=False)
    write_audit(result, tmp_path / "out")
    path = str(tmp_path / "out" / "findings.jsonl")
    language = {f.caption_id for f in result.findings if f.category in CAPTION_LEVEL}
    everything = {f.caption_id for f in result.findings}
    assert "2#3" in everything - language  # the ALL CAPS caption: formatting only
    assert set(read_caption_ids(path)) == language
    assert set(read_caption_ids(path, "all")) == everything
    assert set(read_caption_ids(path, "formatting")) == {f.caption_id for f in result.findings
                                                          if f.category == "formatting"}
    with pytest.raises(InputError, match="unknown audit category"):
        read_caption_ids(path, "typos")
    repeats = {f.caption_id for f in result.findings if f.rule == "duplicate.same_image"}
    assert set(result.kept_captions().by_id()) == set(refs.by_id()) - language - repeats

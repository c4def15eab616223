"""`--engine ray` on a local two-worker Ray cluster started by the test: findings and scores identical to the
one-process run, field by field, on a slice of the Karpathy references (one cluster for the module: Ray's
start-up is most of the cost)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from test_engines_local import karpathy_slice  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    assert not ray.is_initialized()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="error")
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    root = os.environ.get("CAPEVAL_DATA_MIRROR")
    default = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    return karpathy_slice(Path(root) if root else default, tmp_path_factory.mktemp("engines-ray"), n_images=150)


def test_ray_score_equals_one_process_score(cluster, data) -> None:
    from capeval.engines.score import score_corpus
    from capeval.metrics.engine import score_files

    ref_path, cand_path, _ = data
    whole = score_files(str(ref_path), [str(cand_path)], "bleu,cider,rouge", progress=False)
    run = score_corpus(str(ref_path), [str(cand_path)], "bleu,cider,rouge", engine="ray", num_shards=4)
    assert run.engine == "ray (local Ray, 2 CPUs)"
    pd.testing.assert_frame_equal(run.report.per_caption, whole.per_caption, check_exact=True)
    pd.testing.assert_frame_equal(run.report.corpus, whole.corpus, check_exact=True)
    assert run.report.signatures == whole.signatures
    assert ray.is_initialized()  # an existing Ray instance is used, not stopped


def test_ray_audit_equals_audit_captions(cluster, data, tmp_path: Path) -> None:
    from capeval.audit import audit_captions
    from capeval.engines.audit import audit_corpus, read_findings
    from capeval.io import load_captions

    ref_path, _, _ = data
    whole = audit_captions(load_captions(ref_path, allow_empty=True), progress=False)
    run = audit_corpus(str(ref_path), str(tmp_path / "out"), engine="ray", num_shards=4, measure_summaries=True)
    assert read_findings(run.out_dir) == [f.to_dict() for f in whole.findings]
    pd.testing.assert_frame_equal(run.summary, whole.summary(), check_exact=True)
    assert len(run.shard_summary_bytes) == 4 and min(run.shard_summary_bytes) > 0

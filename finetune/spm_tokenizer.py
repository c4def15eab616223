"""A sentencepiece tokenizer (InternLM2's `tokenizer.model` + remote-code `InternLM2Tokenizer`) as a fast tokenizer.

The original slow tokenizer splits text on its added tokens and encodes every segment between them with
sentencepiece, so each segment gets the model's dummy prefix `▁` when `normalizer_spec.add_dummy_prefix` is set;
it prepends `<s>`. The fast tokenizer built here does the same (pieces, merges, byte fallback and normalizer
read from the model proto, as transformers' `SpmConverter` does; the dummy prefix on every segment, i.e. the
`legacy` behaviour), and is saved as a plain `tokenizer.json` with `tokenizer_class: TokenizersBackend`, so
reloading it, with or without capeval, cannot re-derive a different pre-tokenizer. No remote code runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

from capeval.errors import CapevalError, InputError


def read_spm_proto(path: str | Path) -> Any:
    """The sentencepiece `ModelProto` of a `tokenizer.model` file."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    try:
        proto.ParseFromString(Path(path).read_bytes())
    except Exception as exc:  # protobuf raises DecodeError for a file that is not a model
        raise InputError(f"not a sentencepiece model ({exc})", path=str(path)) from exc
    if not proto.pieces:
        raise InputError("sentencepiece model has no pieces", path=str(path))
    return proto


def _added_tokens(tokenizer_config: dict[str, Any]) -> list[tuple[int, str]]:
    return sorted((int(i), d["content"]) for i, d in (tokenizer_config.get("added_tokens_decoder") or {}).items())


def spm_fast_tokenizer(spm_path: str | Path, tokenizer_config: dict[str, Any], extra_special_tokens: dict[str, str]) -> Any:
    """A `PreTrainedTokenizerFast` equal to the original slow sentencepiece tokenizer described by `tokenizer_config`
    (its bos/eos/unk/pad, `add_bos_token`/`add_eos_token` and `added_tokens_decoder`, whose ids must be kept)."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import SpmConverter

    proto = read_spm_proto(spm_path)
    if proto.trainer_spec.model_type != 2:
        raise InputError(f"only BPE sentencepiece models are supported (model_type {proto.trainer_spec.model_type})",
                         path=str(spm_path))
    if not hasattr(SpmConverter, "build_tokenizer_from_spm_proto"):
        import transformers

        raise CapevalError(f"transformers {transformers.__version__} cannot build a tokenizer from a sentencepiece "
                           "model proto; upgrade transformers (pip install -U transformers)")
    # The hub's InternLM2 model names its chat pieces [UNUSED_TOKEN_141..146]; tokenizer_config's added_tokens_decoder
    # renames them (<|im_end|> is piece 92542): the slow tokenizer uses those names at those ids, and so do we.
    pieces = [p.piece for p in proto.pieces]
    for i, content in _added_tokens(tokenizer_config):
        if i < len(pieces):
            pieces[i] = content
    vocab = {piece: i for i, piece in enumerate(pieces)}
    if len(vocab) != len(pieces):
        raise InputError("added_tokens_decoder renames a sentencepiece piece to a name another piece has",
                         path=str(spm_path))
    # legacy=True: the dummy prefix goes on every segment between added tokens, as the slow tokenizer encodes them
    backend = SpmConverter.build_tokenizer_from_spm_proto(proto, vocab, legacy=True)

    def name(key: str, default: str | None) -> str | None:
        v = tokenizer_config.get(key, default)
        return v.get("content") if isinstance(v, dict) else v

    bos, eos, unk, pad = name("bos_token", "<s>"), name("eos_token", "</s>"), name("unk_token", "<unk>"), name("pad_token", None)
    add_bos, add_eos = bool(tokenizer_config.get("add_bos_token", True)), bool(tokenizer_config.get("add_eos_token", False))
    single, pair, specials = "$A", "$A $B", []
    if add_bos and bos in vocab:
        single, pair = f"{bos} {single}", f"{bos} $A {bos} $B"
        specials.append((bos, vocab[bos]))
    if add_eos and eos in vocab:
        single, pair = f"{single} {eos}", pair.replace("$B", f"$B {eos}").replace("$A ", f"$A {eos} ", 1)
        specials.append((eos, vocab[eos]))
    backend.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=specials)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=bos, eos_token=eos, unk_token=unk, pad_token=pad or eos,
        extra_special_tokens=extra_special_tokens, clean_up_tokenization_spaces=False,
        model_max_length=int(tokenizer_config.get("model_max_length", 4096)),
    )
    added = _added_tokens(tokenizer_config)
    core = {bos, eos, unk, pad}
    tok.add_special_tokens({"additional_special_tokens": [c for _, c in added if c not in core]})
    wrong = [(c, i, tok.convert_tokens_to_ids(c)) for i, c in added if tok.convert_tokens_to_ids(c) != i]
    if wrong:
        raise InputError(f"rebuilt tokenizer ids differ from the original's added_tokens_decoder for {wrong[:5]} "
                         "(token, original id, rebuilt id)", path=str(spm_path))
    return tok


def sentencepiece_ids(spm_path: str | Path, text: str, specials: dict[str, int], *, bos_id: int | None) -> list[int]:
    """Ids the original slow tokenizer gives `text`: split on the special tokens, every other segment encoded by
    sentencepiece itself (the reference the fast tokenizer is checked against at conversion time)."""
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(spm_path))
    ids = [] if bos_id is None else [bos_id]
    pattern = "(" + "|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)) + ")"
    for part in re.split(pattern, text):
        if not part:
            continue
        ids.extend([specials[part]] if part in specials else sp.encode(part))
    return ids


def check_against_sentencepiece(tok: Any, spm_path: str | Path, texts: Sequence[str]) -> None:
    """Stop conversion when the fast tokenizer's ids differ from sentencepiece's on `texts`."""
    specials = {t: tok.convert_tokens_to_ids(t) for t in tok.all_special_tokens}
    bos_id = tok.bos_token_id if tok("x")["input_ids"][:1] == [tok.bos_token_id] else None
    for text in texts:
        fast = list(tok(text)["input_ids"])
        ref = sentencepiece_ids(spm_path, text, specials, bos_id=bos_id)
        if fast != ref:
            i = next((k for k, (a, b) in enumerate(zip(fast, ref)) if a != b), min(len(fast), len(ref)))
            raise InputError(
                f"converted tokenizer differs from sentencepiece at token {i} of {json.dumps(text[:60], ensure_ascii=False)}: "
                f"{tok.convert_ids_to_tokens(fast[i:i + 3])} vs {tok.convert_ids_to_tokens(ref[i:i + 3])}",
                path=str(spm_path),
            )

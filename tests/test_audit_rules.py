"""Each built-in audit rule on real Karpathy-test captions: a true error is found (with the right correction) and a
correct look-alike is left alone. The whole corpus is audited once (corpus awareness needs all of it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from capeval.audit import audit_captions
from capeval.audit.finding import Finding
from capeval.records import CaptionSet


@pytest.fixture(scope="module")
def karpathy(shared_datasets: Path) -> CaptionSet:
    from capeval.io import load_captions

    return load_captions(shared_datasets / "coco-karpathy-test" / "coco_test.json", allow_empty=True)


@pytest.fixture(scope="module")
def findings(karpathy: CaptionSet) -> dict[str, list[Finding]]:
    result = audit_captions(karpathy, progress=False)
    out: dict[str, list[Finding]] = {}
    for f in result.findings:
        out.setdefault(f.caption_id, []).append(f)
    return out


def _of(findings: dict[str, list[Finding]], caption_id: str, category: str) -> list[Finding]:
    return [f for f in findings.get(caption_id, []) if f.category == category]


def _one(findings, karpathy, caption_id: str, category: str, span: str | None = None) -> Finding:
    fs = _of(findings, caption_id, category)
    assert fs, f"no {category} finding in {caption_id}: {karpathy.by_id()[caption_id].text!r}"
    if span is not None:
        fs = [f for f in fs if f.text == span]
        assert fs, f"no {category} finding on {span!r} in {caption_id}"
    f = fs[0]
    assert karpathy.by_id()[caption_id].text[f.start:f.end] == f.text  # span indexes the original caption
    return f


@pytest.mark.slow
class TestSpelling:
    def test_misspelling_found_with_correction(self, findings, karpathy):
        assert _one(findings, karpathy, "44112#0", "spelling", "refridgerator").suggestion == "refrigerator"
        assert _one(findings, karpathy, "48731#0", "spelling", "frisby").suggestion == "frisbee"

    def test_correct_spelling_not_flagged(self, findings):
        assert not _of(findings, "223094#3", "spelling")  # "refrigerator"

    def test_corpus_word_is_a_word(self, findings):
        # "skatepark" is in no dictionary shipped, but several images' captions use it
        assert not _of(findings, "220187#1", "spelling")

    def test_corpus_frequent_misspelling_still_flagged(self, findings, karpathy):
        # "skiis" is used on 9 images, but "skis" one edit away is far commoner
        assert _one(findings, karpathy, "129982#1", "spelling", "skiis").suggestion == "skis"

    def test_acronym_not_flagged(self, findings):
        assert not _of(findings, "326082#3", "spelling")  # "... A TABLE AND TV"


@pytest.mark.slow
class TestRealWord:
    def test_desert_for_dessert(self, findings, karpathy):
        cap = next(c for c in karpathy if "A desert topped with gummy bears" in c.text)
        f = _one(findings, karpathy, cap.caption_id, "real_word", "desert")
        assert f.suggestion == "dessert"

    def test_real_desert_not_flagged(self, findings):
        assert not _of(findings, "545129#2", "real_word")  # "Three zebras standing in a sandy desert area."

    def test_heard_for_herd(self, findings, karpathy):
        assert _one(findings, karpathy, "350789#1", "real_word", "heard").suggestion == "herd"

    def test_its_possessive(self, findings, karpathy):
        assert _one(findings, karpathy, "347950#4", "real_word", "it's").suggestion == "its"

    def test_correct_its_not_flagged(self, findings):
        assert not _of(findings, "223032#2", "real_word")  # "... holding a frisby in its mouth"


@pytest.mark.slow
class TestGrammar:
    def test_doubled_article(self, findings, karpathy):
        f = _one(findings, karpathy, "198448#2", "grammar", "a a")
        assert f.suggestion == "a" and f.rule == "grammar.doubled_word"

    def test_a_women(self, findings, karpathy):
        assert _one(findings, karpathy, "130419#2", "grammar", "A women").suggestion == "A woman"

    def test_a_an(self, findings, karpathy):
        cap = next(c for c in karpathy if c.text.startswith("An man standing in a kitchen"))
        assert _one(findings, karpathy, cap.caption_id, "grammar", "An").suggestion == "A"

    def test_correct_an_not_flagged(self, findings):
        assert not _of(findings, "208589#1", "grammar")  # "... eating an apple in a pot of dirt"

    def test_bare_verb_after_is(self, findings, karpathy):
        assert _one(findings, karpathy, "388531#1", "grammar", "wear").suggestion == "wearing"

    def test_verb_compound_not_flagged(self, findings):
        assert not _of(findings, "551944#2", "grammar")  # "A man is cross country skiing ..."

    def test_number_agreement(self, findings, karpathy):
        assert _one(findings, karpathy, "533407#4", "grammar", "man").suggestion == "men"  # "Two man in hard hats"

    def test_noun_phrase_caption_is_not_an_error(self, findings):
        # no verb, no final period: normal for captions
        assert not findings.get("233376#0")  # "Inside of a kitchen with a refrigerator and counter top."


@pytest.mark.slow
class TestTruncationFormattingNonCaption:
    def test_truncated_caption(self, findings, karpathy):
        assert _one(findings, karpathy, "544365#0", "truncated").text == "to"

    def test_particle_ending_not_truncated(self, findings):
        assert not _of(findings, "491497#2", "truncated")  # "... with the television on."
        assert not _of(findings, "210012#1", "truncated")  # "... a cat sits behind her."

    def test_all_caps(self, findings, karpathy):
        f = _one(findings, karpathy, "326082#3", "formatting")
        assert f.rule == "formatting.all_caps" and f.suggestion == "There is a living room with a table and tv"

    def test_non_caption(self, findings, karpathy):
        _one(findings, karpathy, "499755#2", "non_caption")
        assert not _of(findings, "499755#0", "non_caption")  # a sibling describing the picture


@pytest.mark.slow
class TestDetail:
    def test_duplicate_of_sibling(self, findings, karpathy):
        copies = [c.caption_id for c in karpathy.by_image()["237814"]
                  if c.text.strip().lower() == "a baseball player swinging a bat at a ball"]
        assert len(copies) == 2
        rules = [_one(findings, karpathy, cid, "duplicate").rule for cid in copies]
        assert rules == ["duplicate.first_copy", "duplicate.same_image"]
        others = [c.caption_id for c in karpathy.by_image()["237814"] if c.caption_id not in copies]
        assert not any(_of(findings, cid, "duplicate") for cid in others)

    def test_low_detail(self, findings, karpathy):
        _one(findings, karpathy, "1146#4", "low_detail")  # "A person that is dressed up very nicely."

    def test_detailed_sibling_not_low_detail(self, findings):
        assert not _of(findings, "1146#0", "low_detail")


@pytest.mark.slow
class TestMoreRules:
    def test_derived_and_british_words_are_words(self, findings):
        assert not _of(findings, "421361#3", "spelling")  # "unmowed"
        assert not any(f.text == "mouldings" for f in _of(findings, "459590#4", "spelling"))

    def test_real_word_from_corpus_context(self, findings, karpathy):
        assert _one(findings, karpathy, "375840#0", "real_word", "try").suggestion == "tray"
        assert not _of(findings, "183786#2", "real_word")  # "A tray with eighteen sprinkled ... doughnuts."

    def test_apostrophe_plural_after_number(self, findings, karpathy):
        assert _one(findings, karpathy, "313398#1", "real_word", "Frisbee's").suggestion == "Frisbees"

    def test_plural_subject_with_is(self, findings, karpathy):
        assert _one(findings, karpathy, "575018#4", "grammar", "is").suggestion == "are"

    def test_double_determiner(self, findings, karpathy):
        _one(findings, karpathy, "211246#4", "grammar", "the a")  # "holding on the a parked bus"

    def test_lost_participle_ending(self, findings, karpathy):
        assert _one(findings, karpathy, "333845#0", "grammar", "fill").suggestion == "filled"

    def test_question_is_not_a_caption(self, findings, karpathy):
        _one(findings, karpathy, "494578#1", "non_caption")


def test_loo_cider_equals_compute_metric(karpathy):
    """The leave-one-out CIDEr-D behind off_consensus is exactly compute_metric's on the same documents."""
    from capeval.audit.detail import loo_cider, loo_cider_reference

    images = karpathy.image_ids()[:400]
    sub = karpathy.subset_images(images)
    fast, slow = loo_cider(sub), loo_cider_reference(sub)
    assert len(fast) >= 2000 and fast.keys() == slow.keys()
    assert all(fast[k] == slow[k] for k in slow)  # bit-identical, not just close


@pytest.mark.slow
class TestSiblings:
    """The other captions of the same image as evidence (five people described one picture)."""

    def test_real_word_a_sibling_wrote(self, findings, karpathy):
        # "ridding" / "pane" / "buss": words, but a sibling wrote "riding" / "plane" / "bus", which fit the context
        assert _one(findings, karpathy, "79975#1", "real_word", "ridding").suggestion == "riding"
        assert _one(findings, karpathy, "504811#4", "real_word", "pane").suggestion == "plane"
        assert _one(findings, karpathy, "463084#3", "real_word", "buss").suggestion == "bus"

    def test_sibling_look_alike_not_flagged(self, findings):
        # "gray coat" (a sibling says "cat"): "coat" is a common caption word in its own right
        assert not _of(findings, "66413#4", "real_word")

    def test_spelling_correction_from_siblings(self, findings, karpathy):
        # "birg" is one edit from "big" and "bird"; the other captions of the statue say "bird"
        assert _one(findings, karpathy, "116370#1", "spelling", "birg").suggestion == "bird"


@pytest.mark.slow
class TestCompounds:
    def test_solid_compound_nobody_writes_apart_is_a_word(self, findings):
        assert not _of(findings, "42190#4", "spelling")  # "The kitesurfer leans far backwards"
        assert not _of(findings, "301837#0", "spelling")  # "... modern skylit home kitchen."

    def test_solid_compound_with_an_ing_part_is_a_word(self, findings):
        assert not _of(findings, "42190#2", "spelling")  # "A man kiteboarding on the ocean"

    def test_ordinal_glued_to_a_number_is_not_a_typo(self, findings):
        assert not _of(findings, "363793#4", "spelling")  # "a 50th birthday"
        assert not _of(findings, "376493#3", "spelling")  # "4th street"

    def test_compound_the_corpus_writes_apart_is_a_typo(self, findings, karpathy):
        f = _one(findings, karpathy, "416405#1", "spelling", "firehydrant")  # "fire hydrant" 218 times
        assert f.suggestion == "fire hydrant" and f.rule == "spelling.run_together"

    def test_typo_splitting_into_two_words_still_a_typo(self, findings, karpathy):
        assert _one(findings, karpathy, "77415#4", "spelling", "sandwhich").suggestion == "sandwich"
        assert _one(findings, karpathy, "371250#3", "spelling", "pinapple").suggestion == "pineapple"

    def test_indefinite_pronoun_plural_is_a_typo(self, findings, karpathy):
        assert _one(findings, karpathy, "308883#0", "spelling", "someones").suggestion == "someone's"
        assert not _of(findings, "458052#3", "spelling")  # "... from someone's hand"


@pytest.mark.slow
class TestApostrophesAndAgreement:
    def test_its_after_a_preposition(self, findings, karpathy):
        assert _one(findings, karpathy, "387576#4", "real_word", "it's").suggestion == "its"  # "with it's head"
        assert not _of(findings, "458052#3", "real_word")  # "A cat eating a banana from someone's hand"

    def test_lost_possessive_apostrophe_after_a(self, findings, karpathy):
        assert _one(findings, karpathy, "48530#1", "real_word", "persons").suggestion == "person's"
        assert _one(findings, karpathy, "225032#3", "real_word", "giraffes").suggestion == "giraffe's"
        assert not _of(findings, "560804#1", "real_word")  # "playing a doubles match"

    def test_apostrophe_plural_of_a_sibilant(self, findings, karpathy):
        assert _one(findings, karpathy, "575179#2", "real_word", "sandwich's").suggestion == "sandwiches"

    def test_coordinated_subject_with_is(self, findings, karpathy):
        assert _one(findings, karpathy, "370175#1", "grammar", "is").suggestion == "are"  # "a dog and a ... backpack is"
        cap = next(c for c in karpathy if c.text.startswith("A black and white dog is"))
        assert not _of(findings, cap.caption_id, "grammar")  # "and" between adjectives


@pytest.mark.slow
class TestDetailCalibrated:
    def test_low_detail_names_only_a_generic_meal(self, findings, karpathy):
        _one(findings, karpathy, "117089#4", "low_detail")  # "A meal is being displayed on a table."
        others = [c.caption_id for c in karpathy.by_image()["117089"] if c.caption_id != "117089#4"]
        assert not any(_of(findings, cid, "low_detail") for cid in others)

    def test_compound_names_the_agreed_object(self, findings):
        assert not _of(findings, "281722#2", "low_detail")  # "The sailboat became beached ..." (others: boat)

    def test_off_consensus_subject_no_sibling_names(self, findings, karpathy):
        _one(findings, karpathy, "13490#0", "off_consensus")  # "angel food cake" where the others see bread
        others = [c.caption_id for c in karpathy.by_image()["13490"] if c.caption_id != "13490#0"]
        assert not any(_of(findings, cid, "off_consensus") for cid in others)

    def test_vague_subject_is_not_off_consensus(self, findings):
        assert not _of(findings, "251717#3", "off_consensus")  # "A group of animals that are outside in the wild."


@pytest.mark.slow
class TestSuggestions:
    def test_run_on_of_a_common_phrase_is_split(self, findings, karpathy):
        assert _one(findings, karpathy, "74478#1", "spelling", "aroom").suggestion == "a room"
        assert _one(findings, karpathy, "170038#2", "spelling", "witha").suggestion == "with a"

    def test_sibling_word_that_sounds_the_same(self, findings, karpathy):
        assert _one(findings, karpathy, "425100#3", "spelling", "freesby").suggestion == "frisbee"


@pytest.mark.slow
class TestPluralOfPhrase:
    def test_plural_head_of_an_of_phrase_with_singular_verb(self, findings, karpathy):
        assert _one(findings, karpathy, "108193#0", "grammar", "sits").suggestion == "sit"  # "some pieces of pizza sits"

    def test_singular_collective_head_is_not_flagged(self, findings, karpathy):
        assert not _of(findings, "271471#4", "grammar")  # "A bunch of bananas is displayed on a counter top."
        assert not _of(findings, "417586#1", "grammar")  # "A pair of shoes is sitting on the bench."


@pytest.mark.slow
class TestFormattingMore:
    def test_stray_capital_mixed_punctuation_and_glued_sentence(self, findings, karpathy):
        assert _one(findings, karpathy, "315249#3", "formatting", "oceaN").suggestion == "ocean"
        assert _one(findings, karpathy, "149456#3", "formatting", ",.").suggestion == "."
        assert _one(findings, karpathy, "459590#4", "formatting", ".").rule == "formatting.missing_space_after_period"
        assert _one(findings, karpathy, "473573#1", "formatting", ". ").rule == "formatting.period_mid_sentence"

    def test_abbreviation_period_and_double_space_not_reported(self, findings):
        assert not _of(findings, "49255#1", "formatting")  # "... of Front Ave. and Seventh St."
        assert not _of(findings, "10825#1", "formatting")  # "texting  on": invisible to metrics, not an error


@pytest.mark.slow
class TestAllCaps:
    def test_short_typo_in_an_all_caps_caption_is_not_an_acronym(self, findings, karpathy):
        _one(findings, karpathy, "30667#1", "spelling", "UN")  # "A BROWN DOG IS LAYING UN THE FLOOR ..."

    def test_all_caps_caption_of_words_not_flagged(self, findings):
        assert not _of(findings, "326082#3", "spelling")  # "THERE IS A LIVING ROOM WITH A TABLE AND TV"

"""The language guard: can a model's tokenizer read the texts?"""

import pytest

from trainer.models import ENGLISH_MINILM, MULTILINGUAL_E5
from trainer.vocabulary import (
    GARBLED_SHARE_LIMIT,
    UNKNOWN_SHARE_LIMIT,
    model_coverage,
    vocabulary_coverage,
)

CHINESE = ["这件衣服质量很好，物流也很快，五星好评！", "尺码偏小，穿着不舒服，不推荐购买。",
           "客服态度一般，等了三天才发货。", "颜色和图片一样，性价比很高，会回购的。",
           "用了两天就坏了，非常失望，已经申请退货。", "面料柔软，做工精细，孩子很喜欢。"]
ENGLISH = ["The fit is great and the fabric feels soft.", "Runs small, I had to return it.",
           "Delivery took three weeks and the box was damaged.",
           "Okay for the price, nothing more.",
           "Beautiful colour, exactly as shown in the photos.", "The zipper broke after two days!"]


def test_the_english_model_cannot_read_chinese():
    coverage = model_coverage(ENGLISH_MINILM, CHINESE, max_length=128)
    assert coverage.unknown_share > 0.3 and coverage.unreadable()
    assert coverage.examples and coverage.examples[0] in CHINESE


def test_the_english_model_reads_english():
    coverage = model_coverage(ENGLISH_MINILM, ENGLISH, max_length=128)
    assert coverage.unknown_share == 0 and not coverage.unreadable()
    assert coverage.examples == []


@pytest.mark.slow
def test_the_multilingual_default_reads_both():
    for texts in (CHINESE, ENGLISH, [f"{e} {c}" for e, c in zip(ENGLISH, CHINESE, strict=True)]):
        coverage = model_coverage(MULTILINGUAL_E5, texts, max_length=128)
        assert coverage.unknown_share < 0.01, coverage


def test_unknown_characters_are_counted_as_a_share_of_the_text():
    coverage = model_coverage(ENGLISH_MINILM, ["good 好好好好"], max_length=128)
    assert coverage.unknown_char_share == pytest.approx(4 / 8)


def test_truncation_counts_texts_longer_than_max_length_with_special_tokens():
    from transformers import AutoTokenizer

    from trainer.models import resolve_model_name

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name(ENGLISH_MINILM))
    texts = ["one two three", "word " * 20]  # 3 and 20 content tokens, + [CLS] [SEP]
    coverage = vocabulary_coverage(tokenizer, texts, max_length=6)
    assert coverage.truncated_texts == 1 and coverage.truncated_share == 0.5
    assert vocabulary_coverage(tokenizer, texts, max_length=22).truncated_texts == 0


def test_the_limit_is_a_share_of_tokens_and_empty_input_is_readable():
    from transformers import AutoTokenizer

    from trainer.models import resolve_model_name

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name(ENGLISH_MINILM))
    coverage = vocabulary_coverage(tokenizer, ["good 好"], max_length=16)
    assert coverage.unknown_tokens == 1 and coverage.tokens == 2
    assert coverage.unreadable(limit=0.6) is False and coverage.unreadable() is True
    assert UNKNOWN_SHARE_LIMIT == 0.05
    assert not vocabulary_coverage(tokenizer, [], max_length=16).unreadable()


def test_chinese_read_as_latin1_has_no_unknown_token_but_is_unreadable():
    """The tokenizer knows every Latin letter of "å¥½è¯„": 0% unknown, and still garbage."""
    garbled = [text.encode("utf-8").decode("latin-1") for text in CHINESE]
    coverage = model_coverage(MULTILINGUAL_E5, garbled, max_length=128)  # the default model
    assert coverage.unknown_share == 0
    assert coverage.garbled_texts == len(CHINESE) and coverage.garbled_share == 1.0
    assert coverage.unreadable()
    assert coverage.examples[0] == garbled[0][:120]


def test_the_garbled_share_is_read_from_the_raw_texts_when_given():
    from annotator.lib.cleaning import clean_text

    raw = [text.encode("utf-8").decode("latin-1") for text in ENGLISH[:5]] + [
        "Très bien ça".encode().decode("latin-1")]
    cleaned = [clean_text(text) for text in raw]  # ASCII, and "TrÃ¨s bien Ã§a"
    coverage = model_coverage(ENGLISH_MINILM, cleaned, max_length=128, raw_texts=raw)
    assert coverage.garbled_texts == 1 and coverage.garbled_share == pytest.approx(1 / 6, 1e-3)
    assert coverage.unreadable() and GARBLED_SHARE_LIMIT < 1 / 6


def test_real_chinese_and_english_are_not_garbled():
    coverage = model_coverage(ENGLISH_MINILM, CHINESE + ENGLISH, max_length=128)
    assert coverage.garbled_texts == 0 and coverage.garbled_share == 0

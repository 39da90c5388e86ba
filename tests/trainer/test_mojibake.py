"""Mojibake: texts decoded with the wrong encoding are told apart from real text."""

import pytest

from annotator.lib.cleaning import clean_text
from tests.trainer.test_vocabulary import CHINESE, ENGLISH
from trainer.mojibake import garbled_count, looks_garbled, misread_utf8

WESTERN = ["Très bien, je suis ravie : qualité supérieure, façon élégante.",
           "Größe passt, Stoff ist weich. Überraschend gut!",
           "Me encantó, el tamaño es perfecto y llegó rápido. ¡Excelente!",
           "Costs £25 — worth every penny… «superb» © 2024"]
MIXED = ["Great phone 很好用", "Battery died after two days, 电池不行",
         "手机不错 but the screen 有点暗"]


def as_latin1(text: str) -> str:
    return text.encode("utf-8").decode("latin-1")


@pytest.mark.parametrize("text", CHINESE + ENGLISH + WESTERN + MIXED + ["不错！", "👍👍 好"])
def test_real_text_in_any_language_is_not_garbled(text):
    assert not looks_garbled(text) and not looks_garbled(clean_text(text))
    assert misread_utf8(text) is None


@pytest.mark.parametrize("text", CHINESE + WESTERN + MIXED)
def test_utf8_read_as_latin1_is_garbled_and_can_be_read_back(text):
    garbled = as_latin1(text)
    assert looks_garbled(garbled)
    assert misread_utf8(garbled)[1] == text


@pytest.mark.parametrize("text", CHINESE)
def test_cleaned_mojibake_is_still_garbled(text):
    """Cleaning drops the invisible C1 characters, so the text cannot be read back; the
    mess measure still tells."""
    cleaned = clean_text(as_latin1(text))
    assert misread_utf8(cleaned) is None
    assert looks_garbled(cleaned)


def test_utf8_read_as_windows_1252_is_garbled():
    garbled = "Qualité supérieure".encode().decode("cp1252")  # "QualitÃ© supÃ©rieure"
    assert misread_utf8(garbled) == ("cp1252", "Qualité supérieure")


def test_garbled_count_counts_texts():
    assert garbled_count([as_latin1(t) for t in CHINESE] + ENGLISH) == len(CHINESE)

"""Word attributions: faithful on a model that learned a one-word rule, and words that are
spans of the text in English, Chinese, mixed text and emoji."""

import itertools
import random

import pytest

from trainer.explain import Explanation, Word, explain, split_words
from trainer.models import ENGLISH_MINILM, MULTILINGUAL_E5, resolve_model_name

LABELS = ["negative", "positive"]
KEY = "zorblax"  # the only thing that decides the label
FILLER = ["box", "table", "window", "paper", "seven", "green", "chair", "road", "cup", "door",
          "river", "lamp", "stone", "cloud", "pencil", "shelf", "garden", "morning", "blue", "car"]


def synthetic(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Filler sentences, every other one with KEY in place of a word: positive iff KEY."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        words = rng.choices(FILLER, k=rng.randint(4, 9))
        if i % 2:
            words[rng.randrange(len(words))] = KEY
        texts.append(" ".join(words))
        labels.append(LABELS[i % 2])
    return texts, labels


def tokenizer_of(name: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_name(name))


@pytest.fixture(scope="module")
def minilm():
    return tokenizer_of(ENGLISH_MINILM)


@pytest.fixture(scope="module")
def rule_version(tmp_path_factory):
    """MiniLM fine-tuned on the KEY rule (a few seconds on CPU)."""
    from trainer.config import TrainConfig
    from trainer.train import train

    texts, labels = synthetic(64, seed=1)
    out = tmp_path_factory.mktemp("rule-version")
    config = TrainConfig(model_name=ENGLISH_MINILM, max_length=32, epochs=2, batch_size=16,
                         num_threads=2, val_fraction=0, seed=7, device="cpu")
    train(texts=texts, labels=labels, label_names=LABELS, config=config, output_dir=out)
    return out


@pytest.fixture(scope="module", params=["torch", "onnx"])
def rule_scorer(request, rule_version, tmp_path_factory):
    from trainer.onnx_runtime import load_onnx_scorer
    from trainer.predict import load_scorer

    if request.param == "onnx":  # load_scorer's ONNX path, with the export in a throwaway cache
        return load_onnx_scorer(rule_version, cache_dir=tmp_path_factory.mktemp("onnx"))
    return load_scorer(str(rule_version), device="cpu", runtime="torch")


@pytest.mark.slow
def test_the_word_that_decides_the_label_ranks_first(rule_scorer):
    from trainer.predict import predict_proba

    tokenizer, model = rule_scorer
    texts, labels = synthetic(40, seed=2)
    predicted = predict_proba(model, tokenizer, texts, max_length=32).argmax(1)
    assert [LABELS[i] for i in predicted] == labels  # the model learned the rule
    for text in texts[1::2]:
        explanation = explain(model, tokenizer, text, max_length=32)
        assert LABELS[explanation.label_index] == "positive" and explanation.probability > 0.5
        assert explanation.top(1)[0].text == KEY, explanation
        # explaining the other label: the same word now pushes hardest away from it
        against = explain(model, tokenizer, text, label_index=LABELS.index("negative"),
                          max_length=32)
        assert against.top(1, against=True)[0].text == KEY, against


def _explained_with_key(tokenizer, model, rng, rows: int):
    """24 filler words with KEY at a random place, explained within `rows` texts' tokens."""
    words = rng.choices(FILLER, k=24)
    words[rng.randrange(24)] = KEY
    text = " ".join(words)
    length = len(split_words(tokenizer, text, max_length=64).ids)
    return explain(model, tokenizer, text, max_length=64, max_tokens=rows * length)


@pytest.mark.slow
def test_under_a_token_budget_the_deciding_word_still_ranks_first(rule_scorer):
    """Coarse to fine: runs of words first, then the strongest run word by word."""
    tokenizer, model = rule_scorer
    rng = random.Random(5)
    for _ in range(6):
        explanation = _explained_with_key(tokenizer, model, rng, rows=12)
        assert len(explanation.words) == 24
        assert explanation.top(1)[0].text == KEY, explanation


@pytest.mark.slow
def test_a_budget_too_small_for_a_whole_run_still_narrows_the_strongest_one(rule_scorer):
    """8 rows for 24 words: 3 runs of 8, then the strongest cut in 4 parts of 2 words."""
    tokenizer, model = rule_scorer
    rng = random.Random(11)
    for _ in range(6):
        explanation = _explained_with_key(tokenizer, model, rng, rows=8)
        assert KEY in [word.text for word in explanation.top(2)], explanation


@pytest.mark.slow
def test_onnx_and_torch_give_the_same_scores(rule_version, rule_scorer):
    from trainer.predict import load_scorer

    tokenizer, model = rule_scorer
    _, reference = load_scorer(str(rule_version), device="cpu", runtime="torch")
    for text in synthetic(6, seed=3)[0]:
        got = explain(model, tokenizer, text, max_length=32)
        expected = explain(reference, tokenizer, text, max_length=32)
        assert got.label_index == expected.label_index
        assert [w.text for w in got.words] == [w.text for w in expected.words]
        assert got.words and all(abs(a.score - b.score) < 0.01
                                 for a, b in zip(got.words, expected.words, strict=True))


def words_of(tokenizer, text: str) -> list[str]:
    spans = split_words(tokenizer, text).spans
    assert all(start < end for start, end in spans)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # in order, not overlapping
    return [text[start:end] for start, end in spans]


def test_wordpiece_pieces_are_merged_back_into_words(minilm):
    text = "Unbelievably  comfortable, don't you think?"
    assert len(minilm.tokenize("Unbelievably")) > 1
    assert words_of(minilm, text) == ["Unbelievably", "comfortable", ",", "don't", "you",
                                      "think", "?"]
    assert split_words(minilm, text).spans[1] == (14, 25)


def test_each_word_lists_its_pieces_and_no_special_token(minilm):
    words = split_words(minilm, "unbelievably comfortable")
    tokens = minilm.convert_ids_to_tokens(words.ids)
    assert [[tokens[n] for n in positions] for positions in words.pieces] == [
        minilm.tokenize("unbelievably"), ["comfortable"]]


def test_extra_whitespace_and_emoji_keep_the_spans_on_the_text(minilm):
    text = "  great\tfit 😂\n\n👍🏻 well-made!!  "
    assert words_of(minilm, text) == ["great", "fit", "😂", "👍🏻", "well-made", "!", "!"]


@pytest.fixture(scope="module")
def e5():
    return tokenizer_of(MULTILINGUAL_E5)


@pytest.mark.slow
@pytest.mark.parametrize("text, expected", [
    ("质量很好，但是物流太慢了", ["质量", "很好", "，", "但是", "物流", "太", "慢", "了"]),
    ("unbelievably comfortable", ["unbelievably", "comfortable"]),
    ("Great fit 质量很好 ok", ["Great", "fit", "质量", "很好", "ok"]),
    ("  ＡＢＣ１２３  好评！👨‍👩‍👧 ❤️ ", ["ＡＢＣ１２３", "好评", "！", "👨‍👩‍👧", "❤️"]),
])
def test_the_multilingual_tokenizer_gives_words_that_slice_the_text(e5, text, expected):
    assert words_of(e5, text) == expected


@pytest.fixture(scope="module")
def untrained():
    """Any classifier will do to count what was scored."""
    from trainer.models import load_for_training

    return load_for_training(ENGLISH_MINILM, LABELS)


def test_only_the_first_max_words_are_scored(untrained):
    tokenizer, model = untrained
    text = " ".join(f"word{n}" for n in range(12))
    explanation = explain(model, tokenizer, text, max_words=5)
    assert explanation.truncated
    assert [w.text for w in explanation.words] == [f"word{n}" for n in range(5)]
    whole = explain(model, tokenizer, text, max_words=12)
    assert not whole.truncated and len(whole.words) == 12


def test_words_past_max_length_are_not_scored_and_say_so(untrained):
    tokenizer, model = untrained
    explanation = explain(model, tokenizer, "one two three four five six", max_length=5)
    assert explanation.truncated and [w.text for w in explanation.words] == ["one", "two",
                                                                              "three"]


def test_scores_are_the_drop_in_probability_without_the_word(untrained):
    from trainer.predict import predict_proba

    tokenizer, model = untrained
    text = "the fabric feels soft"
    explanation = explain(model, tokenizer, text, label_index=1)
    proba = predict_proba(model, tokenizer, [text, "fabric feels soft", "the feels soft"])
    assert explanation.probability == pytest.approx(proba[0, 1], abs=1e-5)
    assert explanation.words[0].score == pytest.approx(proba[0, 1] - proba[1, 1], abs=1e-5)
    assert explanation.words[1].score == pytest.approx(proba[0, 1] - proba[2, 1], abs=1e-5)
    data = explanation.to_dict()
    assert data["words"][0] == {"text": "the", "start": 0, "end": 3,
                                "score": round(explanation.words[0].score, 4)}


def test_top_words_are_the_strongest_pushes_each_way():
    words = [Word("a", 0, 1, 0.1), Word("b", 2, 3, -0.3), Word("c", 4, 5, 0.5),
             Word("d", 6, 7, 0.0), Word("e", 8, 9, -0.1)]
    explanation = Explanation(label_index=0, probability=0.9, words=words, truncated=False)
    assert [w.text for w in explanation.top(5)] == ["c", "a"]
    assert [w.text for w in explanation.top(1, against=True)] == ["b"]


def test_the_module_imports_without_django_or_torch():
    import os
    import subprocess
    import sys

    code = ("import sys, trainer.explain\n"
            "assert not {'django', 'torch', 'onnxruntime', 'transformers'} & set(sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


class CountingModel:
    """A torch-like classifier that records how many rows and tokens it was asked to read."""

    def __init__(self, inner):
        self.inner, self.rows, self.tokens = inner, 0, 0

    def parameters(self):
        return self.inner.parameters()

    def eval(self):
        return self.inner.eval()

    def __call__(self, input_ids, attention_mask):
        self.rows += len(input_ids)
        self.tokens += int(attention_mask.sum())
        return self.inner(input_ids=input_ids, attention_mask=attention_mask)


@pytest.mark.parametrize("budget", [200, 600, 1500])
def test_the_work_stays_within_the_token_budget(untrained, budget):
    tokenizer, model = untrained
    text = " ".join(f"word{n % 7} is fine" for n in range(20))  # 60 words
    counting = CountingModel(model)
    explanation = explain(counting, tokenizer, text, max_tokens=budget)
    assert len(explanation.words) == 60 and not explanation.truncated
    assert counting.tokens <= budget
    unbounded = CountingModel(model)
    explain(unbounded, tokenizer, text)
    assert unbounded.rows == 61 and unbounded.tokens > budget


def test_a_budget_large_enough_scores_each_word_on_its_own(untrained):
    tokenizer, model = untrained
    text = "the fabric feels soft and warm"
    exact = explain(model, tokenizer, text)
    budgeted = explain(model, tokenizer, text, max_tokens=10_000)
    assert [w.score for w in budgeted.words] == pytest.approx([w.score for w in exact.words])

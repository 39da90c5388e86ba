"""Which words pushed a prediction: occlusion over words, on the ONNX scorer or torch alike.

A word's score is how much the probability of the explained label drops when the word is
taken out of the text: positive pushed toward the label, negative away from it. All the
variants (the text, then the text without each word) run as padded batches through the model
that `trainer.predict.load_scorer` gives, so explaining needs no gradients and takes the fast
ONNX path on CPU. It costs one forward pass per word (batched), so a text is explained when
someone asks for it, never for a whole pool.

The word's pieces are removed rather than replaced by [MASK], [UNK] or [PAD]: a fine-tuned
classifier has hardly seen those tokens (the sentence-transformers MiniLM was never trained
with [MASK]), so a replacement token brings an effect of its own, while the text without the
word is a text the model could meet, and the score reads "without this word, the probability
is that much lower".

Words are rebuilt from the tokenizer's sub-word pieces with its offset mapping, so each word
is a span of the original text: pieces touching each other make one word (WordPiece "##",
SentencePiece pieces without a "▁"); each Chinese or Japanese piece, punctuation mark and
emoji is a word of its own. A Chinese piece is kept whole: the e5 tokenizer's pieces are
mostly the 1-3 character words a reader sees (质量 / 很好 / 物流), and WordPiece splits
Chinese into single characters anyway.
"""

import re
from dataclasses import dataclass

import numpy as np

CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
INNER_MARKS = "'’-"  # joined to the letters around them: don't, well-made
# zero-width joiner, emoji variation selector, skin tones, keycap: one emoji with its neighbour
EMOJI_GLUE = "\u200d\ufe0f\u20e3\U0001f3fb\U0001f3fc\U0001f3fd\U0001f3fe\U0001f3ff"


@dataclass(frozen=True)
class Word:
    text: str
    start: int  # text[start:end] == word.text, in the text as given
    end: int
    score: float = 0.0


@dataclass(frozen=True)
class Explanation:
    label_index: int
    probability: float  # of that label, for the whole text
    words: list[Word]  # the words that were scored, in text order
    truncated: bool  # the text goes on after the last scored word (max_words or max_length)

    def top(self, k: int = 5, *, against: bool = False) -> list[Word]:
        """The k words that pushed hardest toward the label (against=True: away from it)."""
        sign = -1 if against else 1
        pushing = [word for word in self.words if sign * word.score > 0]
        return sorted(pushing, key=lambda word: -sign * word.score)[:k]

    def to_dict(self, digits: int = 4) -> dict:
        return {"label_index": self.label_index,
                "probability": round(self.probability, digits),
                "truncated": self.truncated,
                "words": [{"text": w.text, "start": w.start, "end": w.end,
                           "score": round(w.score, digits)} for w in self.words]}


@dataclass(frozen=True)
class Words:
    """A text as the model reads it, cut into words."""

    ids: list[int]  # token ids, special tokens included
    spans: list[tuple[int, int]]  # each word's characters in the text
    pieces: list[list[int]]  # each word's positions in ids
    cut: bool  # the tokenizer dropped the end of the text (max_length)


def split_words(tokenizer, text: str, *, max_length: int = 128) -> Words:
    """The words of `text` that the model reads, from a fast tokenizer's offset mapping."""
    encoded = tokenizer(text, truncation=True, max_length=max_length,
                        return_offsets_mapping=True, return_special_tokens_mask=True)
    spans, pieces = [], []
    waiting = []  # pieces over whitespace only (a lone SentencePiece "▁"): start the next word
    for position, ((start, end), special) in enumerate(
            zip(encoded["offset_mapping"], encoded["special_tokens_mask"], strict=True)):
        if special:
            continue
        start, end = _strip(text, start, end)
        if start == end:
            waiting.append(position)
            continue
        if spans and _same_word(text, spans[-1], (start, end)):
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
            pieces[-1] += waiting + [position]
        else:
            spans.append((start, end))
            pieces.append(waiting + [position])
        waiting = []
    return Words(ids=list(encoded["input_ids"]), spans=spans, pieces=pieces,
                 cut=bool(encoded.encodings[0].overflowing))


def explain(model, tokenizer, text: str, *, label_index: int | None = None,
            max_length: int = 128, max_words: int = 64, batch_size: int = 32,
            max_tokens: int | None = None) -> Explanation:
    """Word scores for the predicted label (or `label_index`) of one text.

    `model`: an OnnxScorer or a torch sequence classifier (trainer.predict.load_scorer).
    Only the first `max_words` words are scored, to bound the time a long review takes.

    `max_tokens` bounds the work: the tokens of all the texts the model reads (the text and
    its variants, each counted at the text's length). When one variant per word fits, each
    word is taken out on its own; otherwise coarse to fine: runs of neighbouring words are
    taken out together first, then the words of the runs that moved the probability most are
    taken out one by one while the budget lasts (when not even the strongest run fits whole,
    it is cut into as many parts as the budget allows). A word of a run that was not refined
    gets the run's score shared out evenly. (Cutting the strongest runs in halves, round after
    round, measured less faithful at the same budget: docs/explanations.md.)
    """
    words = split_words(tokenizer, text, max_length=max_length)
    spans, pieces = words.spans[:max_words], words.pieces[:max_words]
    pad_id = tokenizer.pad_token_id or 0
    rows_allowed = len(pieces) + 1
    if max_tokens is not None:
        rows_allowed = min(rows_allowed, max(3, max_tokens // max(len(words.ids), 1)))
    if rows_allowed > len(pieces):  # one variant per word
        runs = [[n] for n in range(len(pieces))]
    else:  # half the budget for the runs, the rest to refine the strongest ones
        runs = _runs(len(pieces), max(1, (rows_allowed - 1) // 2))

    def drops(groups: list[list[int]], with_text: bool = False) -> np.ndarray:
        rows = [_without(words.ids, [p for n in group for p in pieces[n]]) for group in groups]
        return _probabilities(model, [words.ids] * with_text + rows, pad_id, batch_size)

    proba = drops(runs, with_text=True)
    if label_index is None:
        label_index = int(proba[0].argmax())
    base = proba[0, label_index]
    run_drops = base - proba[1:, label_index]
    scores = np.zeros(len(pieces))
    for run, drop in zip(runs, run_drops, strict=True):
        scores[run] = drop / len(run)
    left = rows_allowed - 1 - len(runs)
    refine_words = []
    strongest = [r for r in np.argsort(-np.abs(run_drops), kind="stable") if len(runs[r]) > 1]
    for r in strongest:
        if len(runs[r]) <= left - len(refine_words):
            refine_words += runs[r]
    if refine_words:
        scores[refine_words] = base - drops([[n] for n in refine_words])[:, label_index]
    elif strongest and left > 1:  # no whole run fits: the strongest in as many parts as do
        run = runs[strongest[0]]
        parts = [[run[n] for n in part] for part in _runs(len(run), left)]
        for part, drop in zip(parts, base - drops(parts)[:, label_index], strict=True):
            scores[part] = drop / len(part)
    return Explanation(
        label_index=label_index,
        probability=float(base),
        words=[Word(text[start:end], start, end, float(score))
               for (start, end), score in zip(spans, scores, strict=True)],
        truncated=words.cut or len(words.spans) > max_words,
    )


def _runs(count: int, parts: int) -> list[list[int]]:
    """0..count-1 cut into `parts` runs of neighbours, as even as can be."""
    bounds = np.linspace(0, count, min(parts, count) + 1).round().astype(int)
    return [list(range(a, b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    """A piece's span without the whitespace its offsets may include (SentencePiece's "▁")."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _same_word(text: str, previous: tuple[int, int], piece: tuple[int, int]) -> bool:
    if piece[0] < previous[1]:  # pieces over the same characters ("▁" + 质量 both claim 质)
        return True
    if piece[0] == previous[1] and (text[piece[0]] in EMOJI_GLUE
                                    or text[previous[1] - 1] == "\u200d"):
        return True
    return (piece[0] == previous[1] and not _stands_alone(text[previous[0]:previous[1]])
            and not _stands_alone(text[piece[0]:piece[1]]))


def _stands_alone(chars: str) -> bool:
    """Chinese/Japanese pieces, punctuation and emoji are words of their own."""
    if CJK.search(chars):
        return True
    return not any(c.isalnum() or c in INNER_MARKS for c in chars)


def _without(ids: list[int], positions: list[int]) -> list[int]:
    drop = set(positions)
    return [token for n, token in enumerate(ids) if n not in drop]


def _probabilities(model, rows: list[list[int]], pad_id: int, batch_size: int) -> np.ndarray:
    """Softmax of the model over id lists, padded batch by batch (ONNX or torch)."""
    from trainer.onnx_runtime import pad, softmax

    return np.concatenate([softmax(_logits(model, *pad(rows[n:n + batch_size], pad_id)))
                           for n in range(0, len(rows), batch_size)])


def _logits(model, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    from trainer.onnx_runtime import OnnxScorer

    if isinstance(model, OnnxScorer):
        return model.run(ids, mask)[0]
    import torch

    device = next(model.parameters()).device
    model.eval()
    with torch.inference_mode():
        out = model(input_ids=torch.from_numpy(ids).to(device),
                    attention_mask=torch.from_numpy(mask).to(device))
    return out.logits.float().cpu().numpy()

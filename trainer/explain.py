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
            max_length: int = 128, max_words: int = 64, batch_size: int = 32) -> Explanation:
    """Word scores for the predicted label (or `label_index`) of one text.

    `model`: an OnnxScorer or a torch sequence classifier (trainer.predict.load_scorer).
    Only the first `max_words` words are scored, one forward pass each, to bound the time
    a long review takes.
    """
    words = split_words(tokenizer, text, max_length=max_length)
    spans, pieces = words.spans[:max_words], words.pieces[:max_words]
    rows = [words.ids] + [_without(words.ids, positions) for positions in pieces]
    proba = _probabilities(model, rows, tokenizer.pad_token_id or 0, batch_size)
    if label_index is None:
        label_index = int(proba[0].argmax())
    drops = proba[0, label_index] - proba[1:, label_index]
    return Explanation(
        label_index=label_index,
        probability=float(proba[0, label_index]),
        words=[Word(text[start:end], start, end, float(drop))
               for (start, end), drop in zip(spans, drops, strict=True)],
        truncated=words.cut or len(words.spans) > max_words,
    )


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

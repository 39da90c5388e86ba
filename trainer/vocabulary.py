"""Can a model read the data? Unknown tokens and truncation of a sample of texts.

An English vocabulary turns Chinese into [UNK]s (all-MiniLM-L6-v2: about 63% of the tokens
of Chinese reviews) and the fine-tune then learns from almost nothing while every step
reports success. This measures it before training. Texts that look like mojibake (a UTF-8 file
imported as Latin-1: "好评" became "å¥½è¯„") are read without one unknown token and are just
as unreadable: their share is counted apart (trainer.mojibake).
"""

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from trainer.mojibake import looks_garbled

UNKNOWN_SHARE_LIMIT = 0.05  # above this share of unknown tokens a model cannot read the data
GARBLED_SHARE_LIMIT = 0.05  # above this share of mojibake texts the data itself is damaged


@dataclass
class Coverage:
    texts: int
    tokens: int  # content tokens, special tokens excluded
    unknown_tokens: int
    unknown_share: float  # unknown_tokens / tokens
    unknown_char_share: float  # share of non-space characters read as unknown
    truncated_texts: int  # longer than max_length with special tokens
    truncated_share: float
    max_length: int
    examples: list[str] = field(default_factory=list)  # garbled texts, else most unknown tokens
    garbled_texts: int = 0  # texts that look like mojibake
    garbled_share: float = 0.0

    def unreadable(self, limit: float = UNKNOWN_SHARE_LIMIT) -> bool:
        return self.unknown_share > limit or self.garbled_share > GARBLED_SHARE_LIMIT

    def to_dict(self) -> dict:
        return {**asdict(self), "unreadable": self.unreadable()}


def vocabulary_coverage(tokenizer, texts: Sequence[str], *, max_length: int,
                        n_examples: int = 3, raw_texts: Sequence[str] | None = None) -> Coverage:
    """`raw_texts`: the same texts as read from the file, before cleaning, if known (the
    mojibake test is exact on them)."""
    if raw_texts is None:
        raw_texts = texts
    pairs = [(t, raw) for t, raw in zip(texts, raw_texts, strict=True) if t]
    texts = [t for t, _ in pairs]
    if not texts:
        return Coverage(0, 0, 0, 0.0, 0.0, 0, 0.0, max_length)
    fast = getattr(tokenizer, "is_fast", False)
    encoded = tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False,
                        return_offsets_mapping=fast)
    unk_id, specials = tokenizer.unk_token_id, tokenizer.num_special_tokens_to_add()
    tokens = unknown = truncated = chars = unknown_chars = 0
    per_text = []
    for i, ids in enumerate(encoded["input_ids"]):
        n_unknown = sum(1 for t in ids if t == unk_id)
        tokens += len(ids)
        unknown += n_unknown
        truncated += len(ids) + specials > max_length
        per_text.append((n_unknown / max(1, len(ids)), i))
        chars += sum(1 for c in texts[i] if not c.isspace())
        if fast and n_unknown:
            for token, (start, end) in zip(ids, encoded["offset_mapping"][i], strict=True):
                if token == unk_id:
                    unknown_chars += sum(1 for c in texts[i][start:end] if not c.isspace())
    if not fast:  # no offsets: count an unknown token as one character
        unknown_chars = unknown
    garbled = [t for t, raw in pairs if looks_garbled(raw) or looks_garbled(t)]
    worst = garbled[:n_examples] or [
        texts[i] for share, i in sorted(per_text, reverse=True)[:n_examples] if share]
    return Coverage(
        texts=len(texts), tokens=tokens, unknown_tokens=unknown,
        unknown_share=round(unknown / max(1, tokens), 4),
        unknown_char_share=round(min(1.0, unknown_chars / max(1, chars)), 4),
        truncated_texts=truncated, truncated_share=round(truncated / len(texts), 4),
        max_length=max_length, examples=[text[:120] for text in worst],
        garbled_texts=len(garbled), garbled_share=round(len(garbled) / len(texts), 4),
    )


def model_coverage(model_name: str, texts: Sequence[str], *, max_length: int,
                   raw_texts: Sequence[str] | None = None) -> Coverage:
    """vocabulary_coverage with the tokenizer of a model name (built-in, hub id or folder)."""
    from trainer.models import resolve_model_name

    path = resolve_model_name(model_name)
    return vocabulary_coverage(_tokenizer(path), texts, max_length=max_length,
                               raw_texts=raw_texts)


@functools.lru_cache(maxsize=4)
def _tokenizer(path: str):
    """Loaded once per worker process: a check after every push must not reread 16 MB."""
    from transformers import AutoTokenizer

    from trainer.models import offline_kwargs

    return AutoTokenizer.from_pretrained(path, **offline_kwargs(path))

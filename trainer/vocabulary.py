"""Can a model read the data? Unknown tokens and truncation of a sample of texts.

An English vocabulary turns Chinese into [UNK]s (all-MiniLM-L6-v2: about 63% of the tokens
of Chinese reviews) and the fine-tune then learns from almost nothing while every step
reports success. This measures it before training.
"""

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

UNKNOWN_SHARE_LIMIT = 0.05  # above this share of unknown tokens a model cannot read the data


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
    examples: list[str] = field(default_factory=list)  # texts with the most unknown tokens

    def unreadable(self, limit: float = UNKNOWN_SHARE_LIMIT) -> bool:
        return self.unknown_share > limit

    def to_dict(self) -> dict:
        return {**asdict(self), "unreadable": self.unreadable()}


def vocabulary_coverage(tokenizer, texts: Sequence[str], *, max_length: int,
                        n_examples: int = 3) -> Coverage:
    texts = [t for t in texts if t]
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
    worst = [texts[i][:120] for share, i in sorted(per_text, reverse=True)[:n_examples] if share]
    return Coverage(
        texts=len(texts), tokens=tokens, unknown_tokens=unknown,
        unknown_share=round(unknown / max(1, tokens), 4),
        unknown_char_share=round(min(1.0, unknown_chars / max(1, chars)), 4),
        truncated_texts=truncated, truncated_share=round(truncated / len(texts), 4),
        max_length=max_length, examples=worst,
    )


def model_coverage(model_name: str, texts: Sequence[str], *, max_length: int) -> Coverage:
    """vocabulary_coverage with the tokenizer of a model name (built-in, hub id or folder)."""
    from trainer.models import resolve_model_name

    path = resolve_model_name(model_name)
    return vocabulary_coverage(_tokenizer(path), texts, max_length=max_length)


@functools.lru_cache(maxsize=4)
def _tokenizer(path: str):
    """Loaded once per worker process: a check after every push must not reread 16 MB."""
    from transformers import AutoTokenizer

    from trainer.models import offline_kwargs

    return AutoTokenizer.from_pretrained(path, **offline_kwargs(path))

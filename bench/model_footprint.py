"""Size of each built-in model: parameters, a saved version on disk, memory once loaded.

    python -m bench.model_footprint                       # both built-in models
    python -m bench.model_footprint --models multilingual-e5-small

Each model is measured in a fresh subprocess: the resident memory (RSS) a scoring process
gains by loading a version of it (fp32, and int8 as ANNOTATOR_SCORING_INT8 loads it), the
parameters, and the bytes of a saved version (a 3-class head on the base model).
"""

import argparse
import json
import subprocess
import sys

from bench.support import ROOT

PROBE = """
import json, tempfile
from pathlib import Path
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
import torch, transformers  # the libraries count as the process's baseline
from trainer.models import describe_source, load_for_training, resolve_model_name
from trainer.predict import load_scorer
name, quantize = {name!r}, {quantize!r}
with tempfile.TemporaryDirectory() as out:
    tokenizer, model = load_for_training(name, ["negative", "neutral", "positive"])
    model.save_pretrained(out); tokenizer.save_pretrained(out)
    params = sum(p.numel() for p in model.parameters())
    disk = sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file())
    del model, tokenizer
    base = rss_mb()
    tokenizer, model = load_scorer(out, device="cpu", quantize=quantize)
    with torch.inference_mode():
        model(**tokenizer(["warm up"], return_tensors="pt"))
    loaded = rss_mb()
print(json.dumps({{"model": name, "source": describe_source(resolve_model_name(name)),
                   "int8": quantize, "parameters_m": round(params / 1e6, 1),
                   "saved_mb": round(disk / 1e6), "rss_gain_mb": round(loaded - base)}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="multilingual-e5-small,all-MiniLM-L6-v2")
    args = parser.parse_args()
    for name in args.models.split(","):
        for quantize in (False, True):
            code = PROBE.format(name=name, quantize=quantize)
            out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                 text=True, cwd=ROOT).stdout
            print(json.dumps(json.loads(out.strip().splitlines()[-1])))


if __name__ == "__main__":
    main()

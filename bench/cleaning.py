"""Cleaning cost on hostile markup: the cleaner as it was (regexes, quadratic) against today's.

    python -m bench.cleaning                    # 5,000 to 40,000 characters, 3 repeats

For each hostile shape and length, the median seconds of the markup stage of cleaning (tags,
comments, script blocks and entities; the other steps did not change), old and new, side by
side in one run; a linear cleaner doubles when the text doubles, a quadratic one
quadruples. The prediction API cleans up to 64 texts of 20,000 characters per request.
"""

import argparse
import html
import re
import statistics
import time

from annotator.lib.cleaning import strip_markup

# the cleaner before the hardening issue, kept here to compare against
_OLD_SCRIPT_STYLE = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_OLD_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_OLD_BLOCK = re.compile(
    r"</?(?:br|p|div|li|ul|ol|tr|td|th|table|h[1-6]|blockquote|hr)\b[^<>]*>", re.IGNORECASE)
_OLD_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]*)?/?>")


def old_markup(text: str) -> str:
    text = _OLD_SCRIPT_STYLE.sub(" ", text)
    text = _OLD_COMMENT.sub("", text)
    text = _OLD_BLOCK.sub(" ", text)
    return html.unescape(_OLD_TAG.sub("", text))


def new_markup(text: str) -> str:
    return strip_markup(html.unescape(strip_markup(text)))


SHAPES = {
    "unclosed comments": lambda n: "<!--" * (n // 4),
    "unclosed script tags": lambda n: "<script>" * (n // 8),
    "tags without '>'": lambda n: "<a b" * (n // 4),
    "prose": lambda n: ("Great fit, fast delivery & nice colour. " * (n // 40 + 1))[:n],
}


def timed(fn, text: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn(text)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="5000,10000,20000,40000")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| shape | characters | old s | new s | old / new |")
    print("|---|---|---|---|---|")
    for shape, make in SHAPES.items():
        for n in map(int, args.lengths.split(",")):
            text = make(n)
            old, new = timed(old_markup, text, args.repeats), timed(new_markup, text, args.repeats)
            print(f"| {shape} | {n:,} | {old:.4f} | {new:.5f} | {old / new:,.0f}× |")


if __name__ == "__main__":
    main()

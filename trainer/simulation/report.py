"""The results of a simulation: the rows of every curve (FIELDS), the summary that compares
each strategy with random, and the learning-curve plot."""

import csv
from pathlib import Path

import numpy as np

FIELDS = ["strategy", "seed", "round", "labels", "macro_f1", "accuracy", "seconds"]


def read_rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return [{**row, "seed": int(row["seed"]), "round": int(row["round"]),
                 "labels": int(row["labels"]), "macro_f1": float(row["macro_f1"]),
                 "accuracy": float(row["accuracy"]), "seconds": float(row["seconds"])}
                for row in csv.DictReader(f)]


def curves(rows: list[dict]) -> dict[str, dict[int, list[float]]]:
    """strategy -> labels -> macro-F1 of each seed."""
    out: dict[str, dict[int, list[float]]] = {}
    for row in rows:
        out.setdefault(row["strategy"], {}).setdefault(row["labels"], []).append(row["macro_f1"])
    return out


def labels_to_reach(points: dict[int, list[float]], target: float) -> float | None:
    """First label count where the mean curve reaches target, linearly interpolated."""
    xs = sorted(points)
    ys = [float(np.mean(points[x])) for x in xs]
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if y >= target:
            if i == 0:
                return float(x)
            x0, y0 = xs[i - 1], ys[i - 1]
            return float(x0 + (target - y0) * (x - x0) / (y - y0))
    return None


def labels_to_stay_above(points: dict[int, list[float]], target: float) -> float | None:
    """Label count from which the mean curve stays >= target up to the last round.

    The robust reading for noisy curves: a strategy that touches the target once and
    drops again does not count until it stays there. Interpolated on the last crossing.
    """
    xs = sorted(points)
    ys = [float(np.mean(points[x])) for x in xs]
    if not ys or ys[-1] < target:
        return None
    i = len(xs) - 1
    while i > 0 and ys[i - 1] >= target:
        i -= 1
    if i == 0:
        return float(xs[0])
    x0, y0, x1, y1 = xs[i - 1], ys[i - 1], xs[i], ys[i]
    return float(x0 + (target - y0) * (x1 - x0) / (y1 - y0))


def curve_area(points: dict[int, list[float]], low: int, high: int) -> float | None:
    """Area under the mean curve between the measured label counts in [low, high], divided
    by their span (trapezoids): the curve's mean macro-F1 over that stretch of labels."""
    xs = [x for x in sorted(points) if low <= x <= high]
    if len(xs) < 2:
        return None
    ys = [float(np.mean(points[x])) for x in xs]
    area = sum((x1 - x0) * (y0 + y1) / 2
               for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:], strict=False))
    return area / (xs[-1] - xs[0])


def versus(data: dict[str, dict[int, list[float]]], strategy: str, reference: str, *,
           area_to: int = 500, early: int = 200) -> dict:
    """strategy against reference on the label counts both measured (up to area_to): the
    largest gap below it, and each one's area under the curve over all of them and over
    the first `early` labels."""
    points, ref = data[strategy], data[reference]
    common = [x for x in sorted(set(points) & set(ref)) if x <= area_to]
    if not common:
        return {"strategy": strategy, "reference": reference}
    low = common[0]
    mine = {x: points[x] for x in common}
    theirs = {x: ref[x] for x in common}
    gaps = {x: float(np.mean(ref[x]) - np.mean(points[x])) for x in common}
    worst = max(gaps, key=gaps.get)
    return {"strategy": strategy, "reference": reference, "from": low, "to": common[-1],
            "max_deficit": round(gaps[worst], 4), "max_deficit_at": worst,
            "area": _round(curve_area(mine, low, area_to)),
            "reference_area": _round(curve_area(theirs, low, area_to)),
            "early_to": early, "early_area": _round(curve_area(mine, low, early)),
            "reference_early_area": _round(curve_area(theirs, low, early))}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def summarize(rows: list[dict], reference_labels: int | None = None, *,
              pairs: list[str] = (), area_to: int = 500) -> dict:
    """Labels each strategy needs to reach random's mean macro-F1 at reference_labels;
    with pairs ("a:b"), strategy a against strategy b (`versus`)."""
    data = curves(rows)
    summary: dict = {"strategies": {}}
    for strategy, points in data.items():
        last = max(points)
        summary["strategies"][strategy] = {
            "seeds": len(points[last]), "final_labels": last,
            "final_macro_f1_mean": round(float(np.mean(points[last])), 4),
            "final_macro_f1_std": round(float(np.std(points[last])), 4),
        }
    if "random" in data:
        ref = reference_labels if reference_labels in data["random"] else max(data["random"])
        if ref:
            target = float(np.mean(data["random"][ref]))
            summary.update(reference_labels=ref, random_macro_f1_at_reference=round(target, 4))
            for strategy, points in data.items():
                need = labels_to_reach(points, target)
                stay = labels_to_stay_above(points, target)
                entry = summary["strategies"][strategy]
                entry["labels_to_reach_random"] = None if need is None else round(need)
                entry["label_savings"] = None if need is None else round(1 - need / ref, 3)
                entry["labels_to_stay_above_random"] = None if stay is None else round(stay)
                entry["max_deficit_vs_random"] = _max_deficit(points, data["random"])
            for strategy, points in data.items():  # quality at half the reference budget
                half = ref // 2
                if half in points:
                    summary["strategies"][strategy][f"macro_f1_at_{half}"] = round(
                        float(np.mean(points[half])), 4)
    for pair in pairs:
        strategy, reference = pair.split(":")
        if strategy in data and reference in data:
            summary.setdefault("versus", []).append(
                versus(data, strategy, reference, area_to=area_to))
    return summary


def _max_deficit(points: dict[int, list[float]], random: dict[int, list[float]]) -> float | None:
    """Largest (random mean - strategy mean) macro-F1 over the label counts both measured."""
    common = sorted(set(points) & set(random))
    if not common:
        return None
    return round(max(float(np.mean(random[x]) - np.mean(points[x])) for x in common), 4)


def plot(rows: list[dict], path: Path, reference: int | None = None, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for strategy, points in sorted(curves(rows).items()):
        xs = sorted(points)
        mean = [np.mean(points[x]) for x in xs]
        lo, hi = [min(points[x]) for x in xs], [max(points[x]) for x in xs]
        style = "--" if strategy == "random" else "-"
        seeds = max(len(v) for v in points.values())
        (line,) = ax.plot(xs, mean, style, marker="o", ms=3, label=f"{strategy} (n={seeds})")
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15)
    random = curves(rows).get("random", {})
    if reference in random:
        level = float(np.mean(random[reference]))
        ax.axhline(level, color="black", lw=0.8, ls=":",
                   label=f"random at {reference} labels ({level:.3f})")
    ax.set_xlabel("labels")
    ax.set_ylabel("macro-F1 (eval)")
    ax.set_title(title or "Active learning vs random: mean, band = min-max over seeds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary_md(summary: dict) -> str:
    lines = ["| strategy | seeds | final labels | final macro-F1 (mean ± std) "
             "| labels to reach random@ref (first) | savings | labels to stay above "
             "| worst gap to random | macro-F1 at ref/2 |",
             "|---|---|---|---|---|---|---|---|---|"]
    missing = "not reached" if "reference_labels" in summary else "no random run"
    for name, s in summary["strategies"].items():
        need, stay = s.get("labels_to_reach_random"), s.get("labels_to_stay_above_random")
        savings = s.get("label_savings")
        lines.append(f"| {name} | {s['seeds']} | {s['final_labels']} | "
                     f"{s['final_macro_f1_mean']:.4f} ± {s['final_macro_f1_std']:.4f} | "
                     f"{missing if need is None else need} | "
                     f"{'' if savings is None else format(savings, '.0%')} | "
                     f"{missing if stay is None else stay} | "
                     f"{_fmt(s.get('max_deficit_vs_random'), sign=True)} | "
                     f"{_fmt(_half_f1(s))} |")
    if "reference_labels" in summary:
        lines.append(f"\nreference: random's mean macro-F1 at {summary['reference_labels']} labels"
                     f" = {summary['random_macro_f1_at_reference']:.4f}")
    if summary.get("versus"):
        lines += ["", "| strategy | against | labels | worst gap below (at) | area | its area "
                  "| area to early | its area to early |", "|---|---|---|---|---|---|---|---|"]
        for v in summary["versus"]:
            if "from" not in v:
                continue
            lines.append(f"| {v['strategy']} | {v['reference']} | {v['from']}-{v['to']} | "
                         f"{v['max_deficit']:+.4f} ({v['max_deficit_at']}) | {_fmt(v['area'])} | "
                         f"{_fmt(v['reference_area'])} | {_fmt(v['early_area'])} "
                         f"(to {v['early_to']}) | {_fmt(v['reference_early_area'])} |")
    return "\n".join(lines) + "\n"


def _half_f1(entry: dict) -> float | None:
    return next((v for k, v in entry.items() if k.startswith("macro_f1_at_")), None)


def _fmt(value, sign: bool = False) -> str:
    return "" if value is None else format(value, "+.4f" if sign else ".4f")

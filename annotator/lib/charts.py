"""Server-side charts for the insight pages: matplotlib to SVG, returned as data: URIs.

Plain data in, a string for `<img src>` out; nothing here touches the database.
Safe with user-given text (label names, meta values): an SVG shown through `<img>`
runs no script, matplotlib escapes the text it writes, and math parsing is off so a
stray "$" in a product name is drawn as it is. Text stays SVG text (svg.fonttype none)
so the browser's fonts draw scripts matplotlib's bundled font lacks (Chinese names).
matplotlib is imported inside the functions: web processes that never draw stay light.

Drawing costs 0.2-0.4 s a chart, so each chart is drawn once per input: the SVG is kept
in Django's cache under a hash of the function, its arguments and CHART_STYLE. The same
data gives the same chart, so nothing needs invalidating: new data is a new key.
"""

import base64
import functools
import hashlib
import io
import warnings
from collections.abc import Sequence
from contextlib import contextmanager

CHART_STYLE = 1  # raise when the drawing changes: charts cached under the old style go unused
CHART_SECONDS = 24 * 3600
SENTIMENT_COLORS = {"negative": "#c0392b", "neutral": "#9aa5ab", "positive": "#1e8449"}
PALETTE = ["#2456d6", "#e08e0b", "#8e44ad", "#16a085", "#d35400", "#2c3e50", "#c2185b"]
ACCENT = "#2456d6"
MAX_TICKS = 14
RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "annotator",  # stable ids: the same data gives the same bytes
    "text.parse_math": False,
    "font.size": 9.5,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#9aa3b2",
    "axes.labelcolor": "#1d2330",
    "xtick.color": "#4b5563",
    "ytick.color": "#4b5563",
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#e5e7eb",
    "legend.frameon": False,
}


def label_colors(names: Sequence[str], chosen: dict[str, str] | None = None) -> list[str]:
    """A colour per label: the one chosen for it in the project's label set; for a name the
    set lacks (a label since renamed), the sentiment colours where it matches, else a palette
    colour no label of the set has."""
    chosen = chosen or {}
    taken = set(chosen.values())
    free = [c for c in PALETTE if c not in taken]
    others = iter(free + PALETTE * (len(names) // len(PALETTE) + 1))
    return [chosen.get(str(name)) or SENTIMENT_COLORS.get(str(name).lower()) or next(others)
            for name in names]


def _drawn_once(draw):
    """Cache the SVG of draw(*args, **kwargs) by a hash of what it is drawn from."""

    @functools.wraps(draw)
    def cached(*args, **kwargs):
        from django.core.cache import cache

        source = repr((draw.__name__, CHART_STYLE, RC, args, sorted(kwargs.items())))
        key = "chart:" + hashlib.sha256(source.encode()).hexdigest()
        svg = cache.get(key)
        if svg is None:
            svg = draw(*args, **kwargs)
            cache.set(key, svg, CHART_SECONDS)
        return svg

    cached.draw = draw  # uncached, for tests and benchmarks
    return cached


@contextmanager
def _figure(width: float, height: float):
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(RC), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Glyph ... missing": the browser draws it
        fig = Figure(figsize=(width, height), layout="constrained")
        yield fig, fig.subplots()


def _svg(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _thin_ticks(ax, labels: Sequence[str]) -> None:
    """Category names under the bars; every k-th only when there are many (days, weeks)."""
    step = max(1, -(-len(labels) // MAX_TICKS))
    positions = list(range(0, len(labels), step))
    tilt = len(labels) > 6
    ax.set_xticks(positions, [str(labels[i]) for i in positions], rotation=30 if tilt else 0,
                  ha="right" if tilt else "center")


@_drawn_once
def stacked_bars(categories: Sequence[str], series: dict[str, Sequence[float]], *,
                 title: str = "", ylabel: str = "", horizontal: bool = False, percent: bool = False,
                 width: float = 8.6, height: float | None = None,
                 colors: dict[str, str] | None = None) -> str:
    """Bars per category stacked by series (labels) in their `colors` (label_colors);
    `percent` draws shares of each bar."""
    names = list(series)
    values = [list(map(float, series[name])) for name in names]
    if percent:
        totals = [sum(column) or 1.0 for column in zip(*values, strict=True)] if values else []
        values = [[100 * v / t for v, t in zip(row, totals, strict=True)] for row in values]
    if height is None:
        height = max(2.6, 0.32 * len(categories) + 1.3) if horizontal else 3.0
    with _figure(width, height) as (fig, ax):
        positions = range(len(categories))
        base = [0.0] * len(categories)
        for name, row, colour in zip(names, values, label_colors(names, colors), strict=True):
            if horizontal:
                ax.barh(positions, row, left=base, color=colour, label=str(name), height=0.7)
            else:
                ax.bar(positions, row, bottom=base, color=colour, label=str(name), width=0.75)
            base = [b + v for b, v in zip(base, row, strict=True)]
        if horizontal:
            ax.set_yticks(list(positions), [str(c) for c in categories])
            ax.invert_yaxis()
            ax.grid(axis="y", visible=False)
            ax.set_xlabel(ylabel)
            if percent:
                ax.set_xlim(0, 100)
        else:
            _thin_ticks(ax, categories)
            pad = max(0.0, (6 - len(categories)) / 2)  # a lone bar stays bar-sized
            ax.set_xlim(-0.5 - pad, len(categories) - 0.5 + pad)
            ax.grid(axis="x", visible=False)
            ax.set_ylabel(ylabel)
            if percent:
                ax.set_ylim(0, 100)
        if title:
            ax.set_title(title, pad=24 if names else 6)
        if names:
            ax.legend(loc="lower left", bbox_to_anchor=(0, 1.01), ncols=min(len(names), 6),
                      handlelength=1.0, borderaxespad=0)
        return _svg(fig)


@_drawn_once
def label_bars(names: Sequence[str], values: Sequence[float], *, ylabel: str = "",
               width: float = 5.0, height: float = 2.6,
               colors: dict[str, str] | None = None) -> str:
    """One bar per label in the label's colour (label_colors), its count written above it."""
    with _figure(width, height) as (fig, ax):
        positions = range(len(names))
        bars = ax.bar(positions, values, color=label_colors(names, colors), width=0.6)
        ax.bar_label(bars, padding=2, fontsize=9)
        ax.set_xticks(positions, [str(name) for name in names])
        ax.grid(axis="x", visible=False)
        ax.set_ylabel(ylabel)
        ax.margins(y=0.15)
        return _svg(fig)


@_drawn_once
def learning_curve(points: Sequence[dict], *, title: str = "") -> str:
    """Macro-F1 against labels; points: {"x", "y", "label", "active", "gold"}."""
    with _figure(8.6, 2.8) as (fig, ax):
        xs = [p["x"] for p in points]
        ys = [p["y"] for p in points]
        ax.plot(xs, ys, color=ACCENT, linewidth=1.8, marker="o", markersize=5, zorder=2)
        for p in points:
            if not p.get("gold", True):  # evaluated on a validation split: not comparable
                ax.plot([p["x"]], [p["y"]], marker="o", markersize=8, color="white",
                        markeredgecolor=ACCENT, zorder=3)
            ax.annotate(p["label"], (p["x"], p["y"]), textcoords="offset points",
                        xytext=(0, 8), ha="center", fontsize=8, color="#4b5563")
        active = [p for p in points if p.get("active")]
        if active:
            ax.plot([active[0]["x"]], [active[0]["y"]], marker="*", markersize=16,
                    color="#e08e0b", markeredgecolor="#8a5a00", zorder=4, linestyle="none",
                    label="active version")
            ax.legend(loc="lower right")
        top = max(ys, default=1.0)
        ax.set_ylim(0, min(1.05, max(0.5, top + 0.12)))
        ax.set_xlim(left=0)
        ax.set_xlabel("labels used for training")
        ax.set_ylabel("macro-F1")
        ax.set_title(title)
        return _svg(fig)


@_drawn_once
def heatmap(matrix: Sequence[Sequence[int]], labels: Sequence[str], *,
            title: str = "") -> str:
    """Counts with true labels as rows; colour is the share of each row (recall view)."""
    size = max(3.0, 0.85 * len(labels) + 1.9)
    with _figure(size + 0.6, size) as (fig, ax):
        rows = [list(map(int, row)) for row in matrix]
        shares = [[v / (sum(row) or 1) for v in row] for row in rows]
        image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        ax.grid(False)
        names = [str(label) for label in labels]
        ax.set_xticks(range(len(names)), names, rotation=30 if len(names) > 3 else 0,
                      ha="right" if len(names) > 3 else "center")
        ax.set_yticks(range(len(names)), names)
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                ax.text(j, i, str(value), ha="center", va="center", fontsize=10,
                        color="white" if shares[i][j] > 0.55 else "#1d2330")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true (gold)")
        ax.set_title(title)
        for spine in ax.spines.values():
            spine.set_visible(False)
        fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
        return _svg(fig)


# --- the pages' charts (titles are in the page's HTML) -----------------------------------


def dashboard_charts(report: dict, colors: dict[str, str] | None = None) -> dict:
    """The dashboard's charts from selectors_insight.project_dashboard's data; `colors`: the
    colour chosen for each label name."""
    charts = {}
    over_time = report["over_time"]
    if over_time["days"]:
        charts["over_time"] = stacked_bars(
            [day.strftime("%b %d") for day in over_time["days"]], over_time["series"],
            ylabel="annotations", height=2.8, colors=colors)
    labelers = report["labelers"]
    if labelers["rows"]:
        charts["labelers"] = stacked_bars(
            [row["username"] for row in labelers["rows"]],
            {label: [row["by_label"][i] for row in labelers["rows"]]
             for i, label in enumerate(labelers["labels"])},
            ylabel="annotations", horizontal=True, width=5.0, colors=colors)
        charts["distribution"] = label_bars(labelers["labels"], labelers["distribution"],
                                            ylabel="annotations", height=2.2, colors=colors)
    points = [
        {"x": v["label_count"], "y": v["macro_f1"], "label": f"v{v['version']}",
         "active": v["is_active"], "gold": v["evaluated_on"] in ("gold", "")}
        for v in report["versions"] if v["macro_f1"] is not None
    ]
    if points:
        charts["learning_curve"] = learning_curve(points)
    metrics = (report["active"] or {}).get("metrics") or {}
    if metrics.get("confusion_matrix"):
        charts["confusion"] = heatmap(metrics["confusion_matrix"], metrics.get("labels") or [])
    return charts


def breakdown_chart(breakdown: dict, *, max_groups: int = 20,
                    colors: dict[str, str] | None = None) -> str | None:
    """Stacked 100% bars of one sentiment_breakdown (the largest groups, or the last weeks)."""
    rows = breakdown["rows"]
    if not rows:
        return None
    weekly = breakdown["by"] == "week"
    rows = rows[-max_groups:] if weekly else rows[:max_groups]
    return stacked_bars(
        [row["group"] if weekly else f"{row['group']} (n={row['total']})" for row in rows],
        {label: [row["counts"][i] for row in rows]
         for i, label in enumerate(breakdown["labels"])},
        ylabel="share of items (%)", horizontal=not weekly, percent=True, width=8.6,
        colors=colors)

"""Small formatting filters for the insight pages."""

from django import template

from trainer.evaluate import metrics_reliability

register = template.Library()


@register.filter
def duration(seconds) -> str:
    """12.3 -> "12.3 s", 754 -> "12 min 34 s", 7300 -> "2 h 1 min"; "—" when unknown."""
    if seconds is None or seconds == "":
        return "—"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} d {hours % 24} h"


@register.filter
def percent(value, digits: int = 0) -> str:
    """0.4567 -> "46%"; "—" when unknown."""
    if value is None or value == "":
        return "—"
    return f"{100 * float(value):.{int(digits)}f}%"


@register.filter
def index(sequence, i):
    return sequence[i]


@register.filter
def reliability(metrics) -> dict:
    """Can a version's metrics be read? {"n", "on", "reliable", "reason"}."""
    return metrics_reliability(metrics or {})

"""Reads for live monitoring: the latest prediction counts and the open alerts."""

from collections import Counter

from django.conf import settings

from annotator.models import Alert, AlertRule, ModelVersion, Prediction, Project


def open_alerts(project: Project) -> list[Alert]:
    return list(Alert.objects.filter(project=project, acknowledged_at__isnull=True)
                .select_related("rule"))


def alert_rules(project: Project) -> list[AlertRule]:
    return list(AlertRule.objects.filter(project=project))


def monitoring_status(project: Project, *, window: int | None = None) -> dict:
    """Label counts among the newest `window` items the active version predicted, and the
    unacknowledged alerts: what the dashboard polls."""
    window = window or settings.MONITORING_WINDOW
    version = ModelVersion.objects.filter(project=project, is_active=True).first()
    counts: Counter = Counter()
    latest = None
    if version is not None:
        recent = list(Prediction.objects.filter(model_version=version)
                      .order_by("-item_id").values_list("label", "created_at")[:window])
        counts = Counter(label for label, _ in recent)
        latest = max((created for _, created in recent), default=None)
    items = sum(counts.values())
    names = list(project.label_names) + sorted(set(counts) - set(project.label_names))
    return {
        "model_version": version.version if version else None,
        "window": window,
        "items": items,
        "latest_prediction_at": latest.isoformat() if latest else None,
        "labels": [{"label": name, "count": counts[name],
                    "share": round(counts[name] / items, 4) if items else 0.0}
                   for name in names],
        "alerts": [{"id": a.pk, "rule": a.rule.name, "label": a.rule.label,
                    "share": round(a.share, 4), "threshold": a.rule.threshold,
                    "items": a.items, "created_at": a.created_at.isoformat()}
                   for a in open_alerts(project)],
    }

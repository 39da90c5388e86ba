"""Live sentiment monitoring: predict pushed items, evaluate alert rules, deliver webhooks.

items_arrived -> (after commit) predict_items_task on the "scoring" queue -> items_predict
stores Prediction rows of the active version -> alert_rules_evaluate -> on a crossing, an
Alert and (after commit) deliver_webhook_task -> webhook_deliver, one WebhookDelivery per
attempt, retried with exponential back-off by the task. See docs/monitoring.md.
"""

import hashlib
import hmac
import json
import logging

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone

from annotator.lib import webhook_targets
from annotator.models import Alert, AlertRule, Item, Prediction, WebhookDelivery
from annotator.queueing import enqueue_on_commit

logger = logging.getLogger(__name__)

PREDICT_BATCH = 256  # items per predict_items_task


def items_arrived(*, project_id: int, item_ids: list[int]) -> None:
    """New items reached the project: predict them after commit, in batches."""
    ids = sorted(set(item_ids))
    for start in range(0, len(ids), PREDICT_BATCH):
        batch = ids[start:start + PREDICT_BATCH]
        enqueue_on_commit("annotator.tasks.predict_items_task", project_id, batch)


def items_predict(*, project_id: int, item_ids: list[int]) -> dict:
    """Predict the items with the project's active model and store the predictions.

    Items that already have a prediction of the active version are skipped, so a re-run is
    a no-op. Afterwards the project's alert rules are evaluated.
    """
    from annotator.ml import serving
    from trainer.strategies import margin

    try:
        served = serving.served_model(project_id)
    except serving.NoActiveModel:
        return {"skipped": "no active model"}
    if not item_ids:
        return {"predicted": 0}
    # This task takes along pushed items that arrived after its own and wait unpredicted (up
    # to PREDICT_BATCH): under a backlog the queue's later tasks find theirs done, so many
    # small pushes are predicted in few large batches.
    arrived = (Item.objects.filter(project_id=project_id, pk__gte=min(item_ids),
                                   import_job__isnull=True, split=Item.Split.POOL)
               | Item.objects.filter(project_id=project_id, pk__in=item_ids))
    done = Prediction.objects.filter(model_version_id=served.version_id,
                                     item_id__gte=min(item_ids))
    rows = list(arrived.exclude(pk__in=done.values("item_id")).order_by("pk")
                .values_list("pk", "text")[:max(PREDICT_BATCH, len(item_ids))])
    if rows:
        results = served.predict([text for _, text in rows])
        proba = [[r["probabilities"][name] for name in served.label_names] for r in results]
        scores = margin(proba)
        Prediction.objects.bulk_create([
            Prediction(item_id=item_id, model_version_id=served.version_id, label=r["label"],
                       probabilities=p, uncertainty=float(s))
            for (item_id, _), r, p, s in zip(rows, results, proba, scores, strict=True)
        ], ignore_conflicts=True)  # a concurrent run of the same batch stored them first
    fired = alert_rules_evaluate(project_id=project_id)
    return {"predicted": len(rows), "version": served.version, "alerts": fired}


def _rule_window(rule: AlertRule, version_id: int):
    """Predictions of the active version on the newest `window` matching items."""
    predictions = Prediction.objects.filter(model_version_id=version_id,
                                            item__project_id=rule.project_id)
    if rule.meta_field:
        # one key, taken literally (a "__" in it is not a lookup path)
        predictions = predictions.alias(
            meta_value=Cast(KeyTextTransform(rule.meta_field, "item__meta"), TextField())
        ).filter(meta_value=rule.meta_value)
    return predictions.order_by("-item_id")[:rule.window]


def rule_share(rule: AlertRule, version_id: int) -> tuple[float | None, int]:
    """(share of the rule's label, items) over its window; share None until the window is full."""
    labels = list(_rule_window(rule, version_id).values_list("label", flat=True))
    if len(labels) < rule.window:
        return None, len(labels)
    return labels.count(rule.label) / len(labels), len(labels)


def alert_rules_evaluate(*, project_id: int) -> list[int]:
    """Evaluate the project's active rules; the ids of the alerts that fired.

    A rule fires when its share crosses above the threshold: the conditional UPDATE of
    `above` lets exactly one evaluation win, so concurrent workers never fire twice.
    """
    from annotator.models import ModelVersion

    version_id = (ModelVersion.objects.filter(project_id=project_id, is_active=True)
                  .values_list("pk", flat=True).first())
    if version_id is None:
        return []
    fired = []
    for rule in AlertRule.objects.filter(project_id=project_id, is_active=True):
        share, items = rule_share(rule, version_id)
        if share is None:
            continue
        rules = AlertRule.objects.filter(pk=rule.pk)
        if share <= rule.threshold:
            rules.update(above=False, last_share=share)
            continue
        with transaction.atomic():
            if rules.filter(above=False).update(above=True, last_share=share) != 1:
                rules.update(last_share=share)
                continue
            alert = Alert.objects.create(rule=rule, project_id=project_id, share=share,
                                         items=items)
            if rule.webhook_url:
                _enqueue_delivery(alert.pk)
        logger.info("alert %s: %s at %.1f%% of %s items", alert.pk, rule.name, share * 100, items)
        fired.append(alert.pk)
    return fired


def _enqueue_delivery(alert_id: int) -> None:
    enqueue_on_commit("annotator.tasks.deliver_webhook_task", alert_id)


def alert_acknowledge(*, alert: Alert, user) -> bool:
    """Hide the alert's banner; False if someone acknowledged it already."""
    return Alert.objects.filter(pk=alert.pk, acknowledged_at__isnull=True).update(
        acknowledged_at=timezone.now(), acknowledged_by=user) == 1


# --- rules (managed through the API and the admin) -----------------------------------------

RULE_FIELDS = ("name", "label", "threshold", "window", "meta_field", "meta_value",
               "webhook_url", "is_active")


def alert_rule_create(*, project_id: int, **fields) -> AlertRule:
    return AlertRule.objects.create(project_id=project_id,
                                    **{k: v for k, v in fields.items() if k in RULE_FIELDS})


def alert_rule_update(*, rule: AlertRule, **fields) -> AlertRule:
    """Change the rule; a changed condition re-arms it (the next crossing fires)."""
    for name, value in fields.items():
        if name in RULE_FIELDS:
            setattr(rule, name, value)
    rule.above = False
    rule.save()
    return rule


def alert_rule_delete(*, rule: AlertRule) -> None:
    rule.delete()


# --- webhooks -------------------------------------------------------------------------------

def webhook_body(alert: Alert) -> bytes:
    rule = alert.rule
    return json.dumps({
        "event": "alert",
        "alert_id": alert.pk,
        "project": {"id": alert.project_id, "name": alert.project.name},
        "rule": {"id": rule.pk, "name": rule.name, "label": rule.label,
                 "threshold": rule.threshold, "window": rule.window,
                 "meta_field": rule.meta_field, "meta_value": rule.meta_value},
        "share": round(alert.share, 4),
        "items": alert.items,
        "created_at": alert.created_at.isoformat(),
    }, sort_keys=True).encode()


def webhook_signature(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_backoff(attempt: int) -> int:
    """Seconds to wait after failed attempt `attempt` (1-based): base, 2 x base, 4 x base ..."""
    return settings.WEBHOOK_RETRY_SECONDS * 2 ** (attempt - 1)


def webhook_deliver(*, alert_id: int, attempt: int) -> int | None:
    """POST the alert to its rule's URL once and log the attempt.

    The URL's host is resolved and checked now and the POST goes to that checked address
    (annotator/lib/webhook_targets.py); a refused target is logged and not tried again. Only the
    status code and a short reason are kept, never what the receiver answered.
    Returns the seconds to wait before the next attempt, or None when there is nothing more
    to do (delivered, delivered before, no URL, refused, or the last attempt failed).
    """
    alert = Alert.objects.select_related("rule", "project").filter(pk=alert_id).first()
    if alert is None or not alert.rule.webhook_url or alert.deliveries.filter(delivered=True).exists():
        return None
    url = alert.rule.webhook_url
    body = webhook_body(alert)
    status, error, retry = None, "", True
    try:
        target = webhook_targets.resolve(url)
        response = webhook_targets.post(target, body, settings.WEBHOOK_TIMEOUT_SECONDS, headers={
            "Content-Type": "application/json",
            "User-Agent": "sentiment-annotator-webhook",
            "X-Signature-SHA256": webhook_signature(body, alert.rule.secret),
        })
        with response:
            status = response.status_code
            if not 200 <= status < 300:
                error = _short_reason(response.reason)
    except webhook_targets.TargetUnresolvable as exc:
        error = str(exc)
    except webhook_targets.TargetRefused as exc:
        error, retry = str(exc), False
    except requests.RequestException as exc:
        error = _failure_reason(exc)
    delivered = status is not None and 200 <= status < 300
    retry_in = None
    if not delivered and retry and attempt < settings.WEBHOOK_MAX_ATTEMPTS:
        retry_in = webhook_backoff(attempt)
    WebhookDelivery.objects.create(alert=alert, url=url, attempt=attempt, status_code=status,
                                   error=error, delivered=delivered, retry_in=retry_in)
    if not delivered:
        logger.warning("webhook of alert %s, attempt %s failed: %s %s", alert_id, attempt,
                       status, error)
    return retry_in


def _short_reason(text: str | None) -> str:
    """The receiver's reason phrase, printable ASCII, at most 60 characters."""
    return "".join(c for c in (text or "") if " " <= c <= "~")[:60].strip()


def _failure_reason(exc) -> str:
    """What went wrong, in our words: the exception's text names addresses and ports."""
    import requests

    for kind, reason in ((requests.ConnectTimeout, "connection timed out"),
                         (requests.ReadTimeout, "no answer in time"),
                         (requests.exceptions.SSLError, "TLS error (certificate or handshake)"),
                         (requests.ConnectionError, "connection failed")):
        if isinstance(exc, kind):
            return reason
    return f"request failed ({type(exc).__name__})"

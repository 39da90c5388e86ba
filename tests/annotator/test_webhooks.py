"""Alert webhooks: a signed POST to a local receiver, retries with back-off, every attempt
logged, no second delivery of a delivered alert. The local receiver is allow-listed here
(ANNOTATOR_WEBHOOK_ALLOWED_HOSTS); what is refused without it: test_webhook_targets.py."""

import hashlib
import hmac
import json
import socket

import pytest
from django.test import override_settings

from annotator import tasks
from annotator.models import Alert, AlertRule, WebhookDelivery
from annotator.services.monitoring import alert_rules_evaluate, webhook_backoff
from tests.annotator.monitoring_helpers import Receiver, add_predicted
from tests.annotator.serving_helpers import add_version


@pytest.fixture(autouse=True)
def local_receivers_allowed(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]


@pytest.fixture
def receiver(request):
    with Receiver(getattr(request, "param", 200)) as server:
        yield server


def _alert(project, url: str) -> Alert:
    rule = AlertRule.objects.create(project=project, name="negative spike", label="negative",
                                    threshold=0.5, window=4, webhook_url=url)
    return Alert.objects.create(rule=rule, project=project, share=0.75, items=4)


def test_an_alert_reaches_the_receiver_with_a_valid_signature(project, receiver):
    alert = _alert(project, receiver.url)
    tasks.deliver_webhook_task.apply(args=[alert.pk])
    [(headers, body)] = receiver.requests
    expected = hmac.new(alert.rule.secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Signature-SHA256"], expected)
    payload = json.loads(body)
    assert payload["alert_id"] == alert.pk and payload["rule"]["label"] == "negative"
    assert payload["share"] == 0.75
    delivery = WebhookDelivery.objects.get()
    assert (delivery.attempt, delivery.status_code, delivery.delivered) == (1, 200, True)


@pytest.mark.parametrize("receiver", [500], indirect=True)
@override_settings(WEBHOOK_MAX_ATTEMPTS=3, WEBHOOK_RETRY_SECONDS=7)
def test_a_failing_receiver_is_retried_with_back_off_and_each_attempt_logged(project, receiver,
                                                                            monkeypatch):
    # eager apply() runs each retry at once, if the Retry is not propagated as an error
    monkeypatch.setitem(tasks.deliver_webhook_task.app.conf, "task_eager_propagates", False)
    alert = _alert(project, receiver.url)
    tasks.deliver_webhook_task.apply(args=[alert.pk])
    assert len(receiver.requests) == 3
    attempts = list(WebhookDelivery.objects.filter(alert=alert)
                    .values_list("attempt", "status_code", "delivered", "retry_in", "error"))
    # the status and its reason phrase; what the receiver answered ("nope") is not kept
    reason = "Internal Server Error"
    assert attempts == [(1, 500, False, 7, reason), (2, 500, False, 14, reason),
                        (3, 500, False, None, reason)]


@override_settings(WEBHOOK_RETRY_SECONDS=30)
def test_the_back_off_doubles_with_each_attempt():
    assert [webhook_backoff(n) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]


@override_settings(WEBHOOK_MAX_ATTEMPTS=1)
def test_an_unreachable_receiver_is_logged_with_the_error(project):
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    alert = _alert(project, f"http://127.0.0.1:{port}/hook")
    tasks.deliver_webhook_task.apply(args=[alert.pk])
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status_code, delivery.error) == (None, "connection failed")
    assert str(port) not in delivery.error  # no port scan through the log


def test_a_delivered_alert_is_not_sent_again(project, receiver):
    alert = _alert(project, receiver.url)
    tasks.deliver_webhook_task.apply(args=[alert.pk])
    tasks.deliver_webhook_task.apply(args=[alert.pk])  # a redelivered message
    assert len(receiver.requests) == 1


def test_a_crossing_enqueues_the_webhook_after_commit(project, monkeypatch,
                                                      django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr(tasks.deliver_webhook_task, "delay", sent.append)
    version = add_version(project, 1, active=True, files=False)
    AlertRule.objects.create(project=project, name="spike", label="negative", threshold=0.5,
                             window=4, webhook_url="http://127.0.0.1:9/hook")
    add_predicted(project, version, ["negative"] * 4)
    with django_capture_on_commit_callbacks(execute=True):
        fired = alert_rules_evaluate(project_id=project.pk)
    assert sent == fired and len(fired) == 1

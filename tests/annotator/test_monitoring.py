"""Live monitoring: pushed items predicted by the active model, alert rules that fire on a
crossing, the polled status endpoint, the alert-rule API and who may use them."""

import pytest
from rest_framework.test import APIClient

from annotator import tasks
from annotator.models import Alert, AlertRule, Prediction
from annotator.services.monitoring import alert_rules_evaluate, items_arrived
from tests.annotator.monitoring_helpers import add_items, add_predicted, project_admin
from tests.annotator.serving_helpers import add_version, token_client
from tests.trainer.tiny import LABELS


@pytest.fixture
def version(project):
    return add_version(project, 1, active=True)


@pytest.fixture
def enqueued(monkeypatch):
    calls = []
    monkeypatch.setattr(tasks.predict_items_task, "delay", lambda *args: calls.append(args))
    monkeypatch.setattr(tasks.deliver_webhook_task, "delay", lambda *args: None)
    return calls


def _rule(project, **fields):
    defaults = {"name": "negative spike", "label": "negative", "threshold": 0.5, "window": 4}
    return AlertRule.objects.create(project=project, **{**defaults, **fields})


# --- predictions of pushed items ----------------------------------------------------


def test_pushed_items_are_enqueued_after_commit(project, enqueued,
                                                django_capture_on_commit_callbacks):
    items = add_items(project, ["great", "awful"])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        items_arrived(project_id=project.pk, item_ids=[i.pk for i in items])
        assert enqueued == []
    for callback in callbacks:
        callback()
    assert enqueued == [(project.pk, sorted(i.pk for i in items))]


def test_pushed_items_get_a_prediction_of_the_active_version(project, version):
    items = add_items(project, ["love these shoes", "broke after a day", "arrived tuesday"])
    result = tasks.predict_items_task(project.pk, [i.pk for i in items])
    assert result["predicted"] == 3
    stored = Prediction.objects.filter(model_version=version).order_by("item_id")
    assert [p.item_id for p in stored] == [i.pk for i in items]
    for prediction in stored:
        assert prediction.label in LABELS
        assert len(prediction.probabilities) == len(LABELS)
        assert sum(prediction.probabilities) == pytest.approx(1, abs=1e-4)


def test_predicting_the_same_items_again_stores_nothing_new(project, version):
    ids = [i.pk for i in add_items(project, ["fine", "bad"])]
    tasks.predict_items_task(project.pk, ids)
    before = list(Prediction.objects.values_list("pk", "label"))
    assert tasks.predict_items_task(project.pk, ids)["predicted"] == 0
    assert list(Prediction.objects.values_list("pk", "label")) == before


def test_a_backlog_of_small_pushes_is_predicted_by_the_first_task(project, version):
    """Under load the queue holds many small tasks: the first takes the later arrivals along
    (one larger batch), the others find their items done."""
    first = add_items(project, ["first push"])
    later = add_items(project, ["second push", "third push"])
    assert tasks.predict_items_task(project.pk, [first[0].pk])["predicted"] == 3
    assert tasks.predict_items_task(project.pk, [i.pk for i in later])["predicted"] == 0
    assert Prediction.objects.filter(model_version=version).count() == 3


def test_items_of_another_project_are_not_predicted(project, other_project, version):
    foreign = add_items(other_project, ["not yours"])
    assert tasks.predict_items_task(project.pk, [foreign[0].pk])["predicted"] == 0
    assert not Prediction.objects.exists()


def test_without_an_active_model_nothing_is_predicted(project):
    ids = [i.pk for i in add_items(project, ["fine"])]
    assert tasks.predict_items_task(project.pk, ids) == {"skipped": "no active model"}


# --- alert rules ---------------------------------------------------------------------


def test_a_rule_waits_until_its_window_is_full(project, version, enqueued):
    _rule(project)
    add_predicted(project, version, ["negative"] * 3)
    assert alert_rules_evaluate(project_id=project.pk) == []


def test_a_rule_fires_once_on_crossing_and_not_again_while_above(project, version, enqueued):
    rule = _rule(project)
    add_predicted(project, version, ["positive", "positive", "negative", "positive"])
    assert alert_rules_evaluate(project_id=project.pk) == []
    add_predicted(project, version, ["negative", "negative"])  # 3 of the last 4
    fired = alert_rules_evaluate(project_id=project.pk)
    assert len(fired) == 1
    alert = Alert.objects.get()
    assert (alert.rule, alert.share, alert.items) == (rule, 0.75, 4)
    add_predicted(project, version, ["negative"])
    assert alert_rules_evaluate(project_id=project.pk) == []
    assert Alert.objects.count() == 1


def test_a_rule_fires_again_after_the_share_fell_back(project, version, enqueued):
    _rule(project)
    add_predicted(project, version, ["negative"] * 4)
    alert_rules_evaluate(project_id=project.pk)
    add_predicted(project, version, ["positive"] * 4)
    alert_rules_evaluate(project_id=project.pk)
    add_predicted(project, version, ["negative"] * 4)
    alert_rules_evaluate(project_id=project.pk)
    assert Alert.objects.count() == 2


def test_a_rule_with_a_meta_filter_counts_only_matching_items(project, version, enqueued):
    _rule(project, meta_field="product", meta_value="X")
    add_predicted(project, version, ["negative"] * 4, product="Y")
    add_predicted(project, version, ["positive"] * 4, product="X")
    assert alert_rules_evaluate(project_id=project.pk) == []
    add_predicted(project, version, ["negative"] * 3, product="X")
    assert len(alert_rules_evaluate(project_id=project.pk)) == 1


def test_predicting_pushed_items_evaluates_the_rules(project, version, enqueued):
    rule = _rule(project, label=LABELS[0], threshold=0.0, window=2)
    ids = [i.pk for i in add_items(project, ["love it", "hate it", "meh"])]
    tasks.predict_items_task(project.pk, ids)
    rule.refresh_from_db()
    assert rule.last_share is not None


# --- the polled status and the banner ---------------------------------------------


def _status(client, project):
    return client.get(f"/projects/{project.pk}/monitoring/status")


def test_the_status_has_the_latest_counts_and_open_alerts(client, project, version, enqueued):
    _rule(project)
    add_predicted(project, version, ["negative", "negative", "negative", "positive"])
    alert_rules_evaluate(project_id=project.pk)
    client.force_login(project_admin(project))
    body = _status(client, project).json()
    assert body["model_version"] == 1 and body["items"] == 4
    assert {row["label"]: row["count"] for row in body["labels"]} == {
        "negative": 3, "neutral": 0, "positive": 1}
    assert [a["rule"] for a in body["alerts"]] == ["negative spike"]


def test_an_acknowledged_alert_leaves_the_banner(client, project, version, enqueued):
    _rule(project)
    add_predicted(project, version, ["negative"] * 4)
    alert_rules_evaluate(project_id=project.pk)
    alert = Alert.objects.get()
    client.force_login(project_admin(project))
    url = f"/projects/{project.pk}/monitoring/alerts/{alert.pk}/acknowledge"
    assert client.post(url).json() == {"id": alert.pk, "acknowledged": True}
    assert _status(client, project).json()["alerts"] == []
    alert.refresh_from_db()
    assert alert.acknowledged_at is not None


def test_the_dashboard_includes_the_live_panel(admin_client, project):
    page = admin_client.get(f"/projects/{project.pk}/dashboard/").content.decode()
    assert f"/projects/{project.pk}/monitoring/status" in page


def test_a_labeler_may_not_read_the_status_or_acknowledge(labeler_client, project):
    assert _status(labeler_client, project).status_code == 403
    assert labeler_client.post(
        f"/projects/{project.pk}/monitoring/alerts/1/acknowledge").status_code == 403


def test_an_anonymous_visitor_is_sent_to_login(client, project):
    assert _status(client, project).status_code == 302


# --- the alert-rule API --------------------------------------------------------------

RULES = "/api/projects/{}/alert-rules/"
NEW_RULE = {"name": "negatives on X", "label": "negative", "threshold": 0.3, "window": 50,
            "meta_field": "product", "meta_value": "X", "webhook_url": "https://example.com/hook"}


def test_a_project_admin_creates_a_rule_and_sees_the_secret_once(project):
    client = token_client(project_admin(project))
    created = client.post(RULES.format(project.pk), NEW_RULE, format="json")
    assert created.status_code == 201, created.content
    assert len(created.json()["secret"]) == 64
    listed = client.get(RULES.format(project.pk)).json()
    assert [r["name"] for r in listed] == ["negatives on X"]
    assert "secret" not in listed[0]


def test_a_rule_for_a_label_the_project_lacks_is_refused(project):
    client = token_client(project_admin(project))
    response = client.post(RULES.format(project.pk), {**NEW_RULE, "label": "angry"}, format="json")
    assert response.status_code == 400
    assert "label" in response.json()


def test_a_project_admin_changes_and_deletes_a_rule(project):
    client = token_client(project_admin(project))
    rule = _rule(project, above=True)
    url = RULES.format(project.pk) + str(rule.pk)
    changed = client.patch(url, {"threshold": 0.8}, format="json")
    assert changed.status_code == 200 and changed.json()["threshold"] == 0.8
    assert changed.json()["above"] is False  # re-armed
    assert client.delete(url).status_code == 204
    assert not AlertRule.objects.exists()


def test_a_rule_of_another_project_is_not_found(project, other_project):
    client = token_client(project_admin(project))
    foreign = _rule(other_project)
    assert client.get(RULES.format(project.pk) + str(foreign.pk)).status_code == 404


def test_without_credentials_the_api_answers_401(project):
    assert APIClient().get(RULES.format(project.pk)).status_code == 401


def test_a_labeler_and_an_outsider_get_403(project, labeler, outsider):
    for user in (labeler, outsider):
        assert token_client(user).get(RULES.format(project.pk)).status_code == 403
        assert token_client(user).post(RULES.format(project.pk), NEW_RULE,
                                       format="json").status_code == 403


def test_staff_may_manage_every_projects_rules(project, admin_user):
    response = token_client(admin_user).post(RULES.format(project.pk), NEW_RULE, format="json")
    assert response.status_code == 201

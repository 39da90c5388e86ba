"""How many SQL statements a labeling request costs (issue 13: "a 5 ms labeling request").

Counted inside the test's transaction, so each `transaction.atomic` block shows up as a
SAVEPOINT and a RELEASE that production (autocommit) does not send as statements. The
project-wide progress is cached a few seconds; the first request of each test fills it.
"""

from django.urls import reverse

from annotator.models import Annotation, Item, ModelVersion, Prediction
from tests.annotator.labeling_factories import make_items

# user; item + project + membership + own label + prediction; SAVEPOINT; count and release
# the lease; INSERT; RELEASE; lease the next item (UPDATE ... RETURNING); my labels today
SUBMIT_AND_NEXT = 8
# user; project + membership; lease (UPDATE ... RETURNING); my labels today
NEXT = 4


def _next(client, project):
    return client.get(reverse("label_next", args=[project.pk])).json()


def _submit(client, project, item_id, label="positive"):
    return client.post(
        reverse("label_submit", args=[project.pk]), {"item": item_id, "label": label, "seconds": 2}
    )


def test_submit_and_next_item_takes_at_most_eight_statements(
    labeler_client, project, django_assert_max_num_queries
):
    make_items(project, 20)
    item = _next(labeler_client, project)["item"]
    with django_assert_max_num_queries(SUBMIT_AND_NEXT):
        response = _submit(labeler_client, project, item["id"])
    assert response.status_code == 200
    assert response.json()["item"]["id"] != item["id"]
    assert Annotation.objects.get(item_id=item["id"]).label == "positive"


def test_submit_keeps_its_statement_budget_with_an_active_model(
    labeler_client, project, django_assert_max_num_queries
):
    items = make_items(project, 20)
    version = ModelVersion.objects.create(project=project, version=1, is_active=True,
                                          label_names=project.label_names)
    Prediction.objects.bulk_create(
        Prediction(item=item, model_version=version, label="neutral",
                   probabilities=[0.2, 0.7, 0.1], uncertainty=0.5) for item in items
    )
    item = _next(labeler_client, project)["item"]
    with django_assert_max_num_queries(SUBMIT_AND_NEXT):
        assert _submit(labeler_client, project, item["id"]).status_code == 200
    annotation = Annotation.objects.get(item_id=item["id"])
    assert annotation.model_version_id == version.pk
    assert annotation.predicted_label == "neutral"
    assert annotation.predicted_confidence == 0.7


def test_next_item_takes_at_most_four_statements(
    labeler_client, project, django_assert_max_num_queries
):
    make_items(project, 20)
    _next(labeler_client, project)  # fills the project progress cache
    Item.objects.update(leased_to=None, lease_expires_at=None)
    with django_assert_max_num_queries(NEXT):
        assert _next(labeler_client, project)["item"] is not None


def test_a_reload_gives_back_the_held_item_within_the_budget(
    labeler_client, project, django_assert_max_num_queries
):
    make_items(project, 20)
    first = _next(labeler_client, project)["item"]
    with django_assert_max_num_queries(NEXT):
        assert _next(labeler_client, project)["item"]["id"] == first["id"]

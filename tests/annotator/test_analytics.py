"""Sentiment analytics: shares per kind / meta field / week, from labels and predictions."""

import pytest
from django.urls import reverse

from annotator.selectors import insight as selectors_insight
from tests.annotator.insight_data import XSS, build
from tests.annotator.labeling_factories import make_item

pytestmark = pytest.mark.django_db

HEADER = (
    "group,items,total,negative,neutral,positive,negative_share,neutral_share,positive_share\n"
)


@pytest.fixture
def data(project, labeler):
    return build(project, labeler)


def page(project, **params):
    return reverse("insight_analytics", args=[project.pk]), params


def csv_of(client, project, **params) -> str:
    response = client.get(reverse("insight_analytics_csv", args=[project.pk]), params)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return response.content.decode()


@pytest.mark.parametrize("name", ["insight_analytics", "insight_analytics_csv"])
def test_only_staff_may_see_analytics(name, client, project, labeler, outsider, admin_user):
    url = reverse(name, args=[project.pk])
    response = client.get(url)
    assert response.status_code == 302 and reverse("login") in response["Location"]
    for user in (labeler, outsider):
        client.force_login(user)
        assert client.get(url).status_code == 403
    client.force_login(admin_user)
    assert client.get(url).status_code == 200


def test_labels_by_kind_use_one_consensus_label_per_item(admin_client, project, data):
    assert csv_of(admin_client, project, source="labels", by="kind") == HEADER + (
        "review,4,2,1,0,1,0.5000,0.0000,0.5000\n"
        "query,1,1,0,1,0,0.0000,1.0000,0.0000\n"
    )


def test_labels_by_week_the_items_were_imported(admin_client, project, data):
    assert csv_of(admin_client, project, source="labels", by="week") == HEADER + (
        "2026-11-02,2,2,1,0,1,0.5000,0.0000,0.5000\n"
        "2026-11-09,2,1,0,1,0,0.0000,1.0000,0.0000\n"
    )


def test_predictions_by_meta_field_count_only_the_active_version(admin_client, project, data):
    assert csv_of(admin_client, project, source="predictions", by="meta:product") == HEADER + (
        "(none),2,1,0,0,1,0.0000,0.0000,1.0000\n"
        "Kettle,1,1,1,0,0,1.0000,0.0000,0.0000\n"
    )


def test_predictions_without_an_active_model_give_only_the_header(admin_client, project, data):
    data["v2"].__class__.objects.filter(project=project).update(is_active=False)
    assert csv_of(admin_client, project, source="predictions", by="kind") == HEADER


def test_csv_cells_are_not_taken_for_formulas(admin_client, project, labeler):
    item = make_item(project, "formula", meta={"product": "=HYPERLINK(\"http://x\")"})
    item.annotations.create(labeler=labeler, label="positive")
    body = csv_of(admin_client, project, source="labels", by="meta:product")
    assert body.splitlines()[1].startswith("\"'=HYPERLINK(")


@pytest.mark.parametrize("params", [
    {"by": "meta:bad-field"},
    {"by": "meta:product;drop table"},
    {"by": "meta:"},
    {"by": "meta:" + "a" * 51},
    {"by": "meta:product__x'"},
    {"by": "meta:abc\n"},  # a final newline: "$" would have let it through (a 500)
    {"by": "month"},
    {"source": "guesses"},
])
def test_bad_grouping_or_source_is_400(admin_client, project, params):
    response = admin_client.get(reverse("insight_analytics_csv", args=[project.pk]), params)
    assert response.status_code == 400
    if "by" in params:
        url = reverse("insight_analytics", args=[project.pk])
        assert admin_client.get(url, params).status_code == 400


def test_page_shows_both_sources_with_coverage(admin_client, project, data):
    url = reverse("insight_analytics", args=[project.pk])
    html = admin_client.get(url, {"by": "kind"}).content.decode()
    assert "Predictions of version v2: 2 items, 40% of the 5 pool items" in html
    assert "3 of 6 items have one" in html
    assert html.count("data:image/svg+xml;base64,") == 2
    assert '<option value="meta:product"' in html  # the meta fields on offer
    assert "source=predictions&amp;by=kind" in html


def test_meta_values_from_users_are_escaped(admin_client, project, data):
    url = reverse("insight_analytics", args=[project.pk])
    html = admin_client.get(url, {"by": "meta:product"}).content.decode()
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_only_plain_meta_keys_are_offered_as_groupings(project):
    make_item(project, "one", meta={"product": "a", "colour\n": "b", "size-x": "c"})
    assert selectors_insight.meta_fields(project) == ["product"]


def test_a_missing_meta_field_groups_everything_under_none(project, data):
    report = selectors_insight.sentiment_breakdown(project, source="labels", by="meta:colour")
    assert [(row["group"], row["total"], row["items"]) for row in report["rows"]] == [
        ("(none)", 3, 6)
    ]

"""Charts draw each label in the colour chosen for it in the project's label set."""

import base64

import pytest
from django.urls import reverse

from annotator.lib import charts
from tests.annotator.insight_data import build

pytestmark = pytest.mark.django_db
CHOSEN = {"negative": "#123456", "neutral": "#654321", "positive": "#abcdef"}


def svg(uri: str) -> str:
    return base64.b64decode(uri.removeprefix("data:image/svg+xml;base64,")).decode()


def test_a_chosen_colour_wins_over_the_sentiment_colours_and_the_palette():
    assert charts.label_colors(["positive", "joy"], {"positive": "#abcdef", "joy": "#010203"}) \
        == ["#abcdef", "#010203"]


def test_names_without_a_chosen_colour_get_one_no_label_has():
    chosen = {"a": charts.PALETTE[0]}
    assert charts.label_colors(["a", "b"], chosen) == [charts.PALETTE[0], charts.PALETTE[1]]


def test_label_bars_draw_the_chosen_colours():
    drawn = svg(charts.label_bars.draw(["joy", "anger"], [3, 4],
                                       colors={"joy": "#0a0b0c", "anger": "#0d0e0f"}))
    assert "#0a0b0c" in drawn and "#0d0e0f" in drawn


@pytest.mark.parametrize("page, keys", [("insight_dashboard", ["charts"]),
                                        ("insight_analytics", ["label_chart"])])
def test_the_insight_pages_draw_the_colours_of_the_label_set(admin_client, project, labeler,
                                                            page, keys):
    project.labels = [{"name": name, "key": str(i), "color": color}
                      for i, (name, color) in enumerate(CHOSEN.items(), start=1)]
    project.save()
    build(project, labeler)
    response = admin_client.get(reverse(page, args=[project.pk]))
    assert response.status_code == 200
    context = response.context
    uris = list(context["charts"].values()) if page == "insight_dashboard" else [
        context["label_chart"]]
    drawn = "".join(svg(uri) for uri in uris if uri)
    for color in CHOSEN.values():
        assert color in drawn
    for default in charts.SENTIMENT_COLORS.values():
        assert default not in drawn

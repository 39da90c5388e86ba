"""The Find page: search by words or meaning, select, label in bulk, undo; who may."""

import hashlib

import numpy as np
import pytest
from django.urls import reverse

from annotator.models import Annotation, BulkLabeling, Item
from annotator.services import similarity
from annotator.services.near_duplicates import near_duplicates_find
from annotator.services.pool_embeddings import embeddings_write, encoder_key

pytestmark = pytest.mark.django_db


def _item(project, text, **fields):
    return Item.objects.create(project=project, text=text, raw_text=text,
                               content_hash=hashlib.sha256(text.encode()).hexdigest(), **fields)


@pytest.fixture
def pool(project):
    texts = {"five stars, fits great": [1, 0, 0], "Five stars — fits great!": [1, 0.01, 0],
             "<script>alert(1)</script> broke": [0, 1, 0], "默认好评": [0.2, 0, 1]}
    items = {text: _item(project, text) for text in texts}
    embeddings_write(project, encoder_key(project), [i.pk for i in items.values()],
                     np.asarray(list(texts.values()), dtype=np.float32))
    return items


def test_labelers_get_403_unless_the_project_lets_them_label_in_bulk(client, project, labeler):
    client.force_login(labeler)
    url = reverse("find_items", args=[project.pk])
    assert client.get(url).status_code == 403
    project.bulk_labeling_by_labelers = True
    project.save()
    assert client.get(url).status_code == 200


def test_words_search_shows_escaped_texts_to_select(lead_client, project, pool):
    page = lead_client.get(reverse("find_items", args=[project.pk]), {"q": "broke"})
    html = page.content.decode()
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt; broke" in html and "<script>alert(1)" not in html
    assert f'value="{pool["<script>alert(1)</script> broke"].pk}"' in html


def test_more_like_this_and_a_group_list_their_items(lead_client, project, pool):
    url = reverse("find_items", args=[project.pk])
    first = pool["five stars, fits great"]
    html = lead_client.get(url, {"like": first.pk}).content.decode()
    assert "Five stars — fits great!" in html and "similarity" in html
    near_duplicates_find(project_id=project.pk)
    first.refresh_from_db()
    html = lead_client.get(url).content.decode()
    assert f"?group={first.duplicate_group}" in html and "2 items, 2 open" in html
    html = lead_client.get(url, {"group": first.duplicate_group}).content.decode()
    assert html.count('class="pick"') == 2


def test_a_selection_is_labeled_then_undone_from_the_page(lead_client, project, pool, lead):
    ids = [pool["five stars, fits great"].pk, pool["Five stars — fits great!"].pk]
    answer = lead_client.post(reverse("find_bulk_label", args=[project.pk]), {
        "item": ids, "label": "positive", "query": '{"kind": "words", "q": "five stars"}',
        "next": f"/projects/{project.pk}/find/?q=five+stars"}, follow=True)
    assert "Labeled 2 items positive." in answer.content.decode()
    bulk = BulkLabeling.objects.get()
    assert bulk.query == {"kind": "words", "q": "five stars"}
    assert Annotation.objects.filter(picked_by="bulk", labeler=lead).count() == 2
    answer = lead_client.post(reverse("find_bulk_undo", args=[project.pk, bulk.pk]), follow=True)
    assert "Undone: 2 labels positive removed." in answer.content.decode()
    assert not Annotation.objects.exists()


@pytest.mark.parametrize("params, message", [
    ({"q": "x" * 10_000}, "at most 500"),
    ({"q": "？！", "mode": "words"}, "nothing to look for"),
    ({"q": "   ", "mode": "meaning"}, ""),  # an empty meaning query: the words search
    ({"q": "fits", "mode": "meaning"}, "no item of this project has an embedding yet"),
    ({"like": "abc"}, "Enter a whole number"),
])
def test_bad_input_is_a_clear_message_not_a_500(lead_client, project, params, message):
    _item(project, "no embeddings here")
    page = lead_client.get(reverse("find_items", args=[project.pk]), params)
    assert page.status_code == 200
    assert message in page.content.decode()


def test_a_typed_query_in_either_language_is_searched_by_meaning(lead_client, project, pool,
                                                                 monkeypatch):
    monkeypatch.setattr(similarity, "query_vector",
                        lambda project, text: np.asarray([0, 0, 1], dtype=np.float32))
    html = lead_client.get(reverse("find_items", args=[project.pk]),
                           {"q": "好评", "mode": "meaning"}).content.decode()
    assert html.index("默认好评") < html.index("five stars, fits great")


def test_the_labeling_page_says_how_many_open_near_duplicates_an_item_has(project, pool):
    from annotator.views.labeling import _item_payload

    near_duplicates_find(project_id=project.pk)
    first = Item.objects.get(pk=pool["five stars, fits great"].pk)
    assert _item_payload(first)["near_duplicates"] == 1
    assert _item_payload(Item.objects.get(pk=pool["默认好评"].pk))["near_duplicates"] == 0

"""Search by meaning, "more like this" and near-duplicate groups over the stored embeddings."""

import hashlib

import numpy as np
import pytest

from annotator.models import Item
from annotator.selectors.duplicates import duplicate_groups, near_duplicate_count
from annotator.services import similarity
from annotator.services.near_duplicates import near_duplicates_find, normalised
from annotator.services.pool_embeddings import embeddings_write, encoder_key
from tests.annotator.serving_helpers import token_client

pytestmark = pytest.mark.django_db


def _item(project, text, **fields):
    return Item.objects.create(project=project, text=text, raw_text=text,
                               content_hash=hashlib.sha256(text.encode()).hexdigest(), **fields)


def _embedded(project, rows: dict[str, list[float]]) -> dict[str, Item]:
    """Items with these texts and (unnormalised) embeddings, stored as the fast loop does."""
    items = {text: _item(project, text) for text in rows}
    embeddings_write(project, encoder_key(project), [i.pk for i in items.values()],
                     np.asarray(list(rows.values()), dtype=np.float32))
    return items


ROWS = {"fits great, love it": [1, 0.1, 0], "great fit, lovely": [0.9, 0.2, 0],
        "arrived broken": [0, 1, 0.1], "broke after a day": [0, 0.9, 0.2],
        "默认好评": [0.3, 0, 1]}


def test_more_like_this_finds_the_nearest_items_best_first(project):
    items = _embedded(project, ROWS)
    found = similarity.similar_to_item(project=project, item=items["fits great, love it"], k=2)
    assert [i for i, _ in found] == [items["great fit, lovely"].pk, items["默认好评"].pk]
    assert found[0][1] > found[1][1] and found[0][1] <= 1.0


def test_every_process_shares_one_index_file_and_new_embeddings_make_a_new_one(project,
                                                                             settings):
    items = _embedded(project, ROWS)
    similarity.similar_to_item(project=project, item=items["arrived broken"], k=1)
    folder = settings.VAR_DIR / "cache" / "vectors"
    first = sorted(p.name for p in folder.glob(f"{project.pk}-*.vec.npy"))
    assert len(first) == 1
    similarity._indexes.clear()  # another process: maps the same file, builds nothing
    similarity.similar_to_item(project=project, item=items["arrived broken"], k=1)
    assert sorted(p.name for p in folder.glob(f"{project.pk}-*.vec.npy")) == first

    late = _embedded(project, {"broken zipper, sent back": [0, 0.95, 0.1]})
    from django.core.cache import cache

    cache.clear()  # the list of chunk files is trusted for a few seconds
    found = similarity.similar_to_item(project=project, item=items["arrived broken"], k=1)
    assert found[0][0] == late["broken zipper, sent back"].pk


def test_a_typed_query_is_searched_by_its_vector(project, monkeypatch):
    items = _embedded(project, ROWS)
    monkeypatch.setattr(similarity, "query_vector",
                        lambda project, text: np.asarray([0, 1, 0], dtype=np.float32))
    found = similarity.similar_to_text(project=project, text="it broke", k=2)
    assert {i for i, _ in found} == {items["arrived broken"].pk, items["broke after a day"].pk}


@pytest.mark.parametrize("query, message", [
    ("", "type a few words"), ("   ", "type a few words"), ("x" * 10_000, "at most 500"),
    ("?!…。", "no letters or digits")])
def test_a_query_that_cannot_be_searched_says_why(project, query, message):
    _embedded(project, ROWS)
    with pytest.raises(similarity.NotSearchable, match=message):
        similarity.similar_to_text(project=project, text=query)


def test_a_project_with_no_embeddings_yet_says_so(project, lead):
    item = _item(project, "nothing embedded yet")
    with pytest.raises(similarity.NotSearchable, match="no item of this project has an "
                                                       "embedding yet"):
        similarity.similar_to_item(project=project, item=item)
    answer = token_client(lead).get(f"/api/projects/{project.pk}/items/{item.pk}/similar/")
    assert answer.status_code == 400 and "embedding yet" in answer.json()["detail"]


def test_an_item_without_an_embedding_says_so(project):
    _embedded(project, ROWS)
    newcomer = _item(project, "arrived a minute ago")
    with pytest.raises(similarity.NotSearchable, match="this item has no embedding yet"):
        similarity.similar_to_item(project=project, item=newcomer)


def test_the_api_hides_others_labels_from_labelers_and_gold_items_from_everyone(
        project, labeler, lead, outsider):
    items = _embedded(project, ROWS)
    gold = _item(project, "gold one", split=Item.Split.GOLD, gold_label="positive")
    url = f"/api/projects/{project.pk}/items/{items['arrived broken'].pk}/similar/?k=10"
    rows = token_client(labeler).get(url).json()["results"]
    assert rows and all("gold_label" not in row["item"] for row in rows)
    assert gold.pk not in {row["item"]["id"] for row in rows}
    assert token_client(outsider).get(url).status_code == 403
    gold_url = f"/api/projects/{project.pk}/items/{gold.pk}/similar/"
    assert token_client(labeler).get(gold_url).status_code == 404  # a gold item does not leak
    for k in ("0", "501", "x"):
        assert token_client(lead).get(url.replace("k=10", f"k={k}")).status_code == 400


def test_texts_alike_but_for_case_width_punctuation_and_spaces_are_one_group(project):
    assert normalised("Five stars, fits GREAT!!") == normalised("five stars fits great")
    assert normalised("好评！") == normalised("好评") != normalised("差评")
    a, b, c, d = (_item(project, t) for t in ("好评！", "好评", "ＦＩＶＥ stars", "five stars"))
    labeled = _item(project, "好评!!", annotation_count=1)  # labeled: not in the open pool
    result = near_duplicates_find(project_id=project.pk)
    assert result["groups"] == 2
    for item in (a, b, c, d, labeled):
        item.refresh_from_db()
    assert a.duplicate_group == b.duplicate_group == min(a.pk, b.pk)
    assert c.duplicate_group == d.duplicate_group != a.duplicate_group
    assert labeled.duplicate_group is None
    assert near_duplicate_count(a) == 1


def test_items_whose_embeddings_nearly_coincide_are_grouped_biggest_first(project, settings):
    settings.NEAR_DUPLICATE_SIMILARITY = 0.99
    _embedded(project, {"nice": [1, 0, 0], "nice one": [1, 0.01, 0], "very nice": [1, 0, 0.01],
                        "bad": [0, 1, 0], "so bad": [0, 1, 0.01], "meh": [0.5, 0.5, 0.7]})
    near_duplicates_find(project_id=project.pk)
    groups = duplicate_groups(project)
    assert [g["size"] for g in groups] == [3, 2]
    assert groups[0]["text"] == "nice" and groups[0]["open"] == 3
    again = near_duplicates_find(project_id=project.pk)  # idempotent
    assert again["groups"] == 2


@pytest.mark.slow
def test_the_default_encoder_finds_a_chinese_and_an_english_query(project):
    """The real path: the pool embedded by the base encoder, a typed query by the same."""
    from trainer.predict import embed_with_base

    texts = ["质量很好，非常满意", "物流太慢了，很失望", "fits great, love the fabric",
             "the zipper broke after one day"]
    emb = embed_with_base(texts, model_name=project.effective_model_name,
                          max_length=project.max_length_or_cap)
    items = [_item(project, t) for t in texts]
    embeddings_write(project, encoder_key(project), [i.pk for i in items], emb)
    assert similarity.similar_to_text(project=project, text="快递很慢", k=1)[0][0] == items[1].pk
    assert similarity.similar_to_text(project=project, text="it fell apart",
                                      k=1)[0][0] == items[3].pk

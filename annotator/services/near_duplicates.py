"""Groups of near-duplicates in the open pool (docs/search.md): "好评！" and "好评", or "Five
stars, fits great" and "five stars - fits great!!", labeled in one action from their group.

Two open (unlabeled) pool items are near-duplicates when their normalised texts are equal
(NFKC, case, punctuation, symbols and spaces aside) or their stored embeddings
(services/pool_embeddings.py) have a cosine similarity of at least NEAR_DUPLICATE_SIMILARITY.
Groups are the connected components of that relation, written to Item.duplicate_group (the
group's smallest item id; None for an item with no near-duplicate). `near_duplicates_task`
(queue "bulk") recomputes them; the pair check looks at the newest NEAR_DUPLICATE_MAX_ITEMS
open items with embeddings (it costs their number squared), the text check at all of them.
"""

import re
import unicodedata

import numpy as np
from django.conf import settings
from django.db import transaction

from annotator.models import Item, Project
from annotator.queueing import enqueue_on_commit
from annotator.services.similarity import NotSearchable, vector_index

BLOCK = 2048  # rows per block of the pair check (block x items float32 scores in memory)
_NOT_TEXT = re.compile(r"[\W_]+", re.UNICODE)


def normalised(text: str) -> str:
    """The text as near-duplicates share it: "Five stars!!" and "five  stars" alike."""
    return _NOT_TEXT.sub("", unicodedata.normalize("NFKC", text).casefold())


class _Groups:
    """Union-find over item ids."""

    def __init__(self):
        self.parent: dict[int, int] = {}

    def find(self, a: int) -> int:
        self.parent.setdefault(a, a)
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def join(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def members(self) -> dict[int, list[int]]:
        groups: dict[int, list[int]] = {}
        for item_id in self.parent:
            groups.setdefault(self.find(item_id), []).append(item_id)
        return {min(ids): ids for ids in groups.values() if len(ids) > 1}


def _join_equal_texts(groups: _Groups, open_items: dict[int, str]) -> None:
    first_with: dict[str, int] = {}
    for item_id, text in open_items.items():
        key = normalised(text)
        if key:
            groups.join(first_with.setdefault(key, item_id), item_id)


def _join_close_embeddings(groups: _Groups, project: Project, open_ids: set[int]) -> int:
    """Join pairs of open items whose embeddings are close; how many items were compared."""
    try:
        index = vector_index(project)
    except NotSearchable:
        return 0
    rows = np.flatnonzero(np.isin(index.ids, np.fromiter(open_ids, dtype=np.int64)))
    rows = rows[np.argsort(-index.ids[rows], kind="stable")][:settings.NEAR_DUPLICATE_MAX_ITEMS]
    ids, vectors = index.ids[rows], np.asarray(index.vectors[rows])
    threshold = settings.NEAR_DUPLICATE_SIMILARITY
    for start in range(0, len(ids), BLOCK):
        scores = vectors[start:start + BLOCK] @ vectors[start:].T  # each pair once
        for a, b in zip(*np.nonzero(scores >= threshold), strict=True):
            if b > a:
                groups.join(int(ids[start + a]), int(ids[start + b]))
    return len(ids)


def near_duplicates_find(*, project_id: int) -> dict:
    """Recompute the project's groups of open near-duplicates (idempotent)."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return {"skipped": "no project"}
    open_items = dict(Item.objects.filter(project=project, split=Item.Split.POOL,
                                          annotation_count=0).values_list("pk", "text"))
    groups = _Groups()
    _join_equal_texts(groups, open_items)
    compared = _join_close_embeddings(groups, project, set(open_items))
    found = groups.members()
    with transaction.atomic():
        Item.objects.filter(project=project, duplicate_group__isnull=False).update(
            duplicate_group=None)
        for group_id, ids in found.items():
            Item.objects.filter(pk__in=ids).update(duplicate_group=group_id)
    return {"groups": len(found), "items": sum(map(len, found.values())),
            "open": len(open_items), "compared_by_meaning": compared}


def near_duplicates_request(*, project: Project) -> None:
    """Queue a recomputation (queue "bulk"); after the transaction commits."""
    enqueue_on_commit("annotator.tasks.near_duplicates_task", project.pk)

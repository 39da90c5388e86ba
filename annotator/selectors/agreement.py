"""Inter-annotator agreement: Cohen's kappa per pair of labelers, Krippendorff's
alpha (nominal) over everyone, label-by-label confusion, and the disagreements
an admin can adjudicate. Reads only; the math is trainer.agreement's.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import combinations

from django.contrib.auth import get_user_model

from annotator.models import Annotation, Item, Project
from trainer.agreement import cohen_kappa, krippendorff_alpha_nominal


def project_agreement(project: Project, *, max_disagreements: int = 200) -> dict:
    """Agreement figures over the items at least two people labeled."""
    rows = Annotation.objects.filter(
        item__project=project, item__annotation_count__gte=2
    ).values_list("item_id", "labeler_id", "label")
    by_item: dict[int, dict[int, str]] = defaultdict(dict)
    for item_id, labeler_id, label in rows.iterator(chunk_size=5000):
        by_item[item_id][labeler_id] = label
    by_item = {item_id: votes for item_id, votes in by_item.items() if len(votes) >= 2}

    names = dict(
        get_user_model()
        .objects.filter(pk__in={u for votes in by_item.values() for u in votes})
        .values_list("pk", "username")
    )
    labels = list(project.label_names)
    for votes in by_item.values():
        labels.extend(label for label in votes.values() if label not in labels)

    pair_labels: dict[tuple[int, int], list[tuple[str, str]]] = defaultdict(list)
    for votes in by_item.values():
        for a, b in combinations(sorted(votes), 2):
            pair_labels[(a, b)].append((votes[a], votes[b]))
    pairs = []
    for (a, b), labelled in sorted(pair_labels.items(), key=lambda kv: -len(kv[1])):
        counts = Counter(labelled)
        pairs.append(
            {
                "a": names.get(a, str(a)),
                "b": names.get(b, str(b)),
                "items": len(labelled),
                "agreement": sum(x == y for x, y in labelled) / len(labelled),
                "kappa": cohen_kappa(labelled),
                "matrix": [(x, [counts[(x, y)] for y in labels]) for x in labels],
            }
        )

    disagreeing = sorted(
        (item_id for item_id, votes in by_item.items() if len(set(votes.values())) > 1),
    )
    items = Item.objects.in_bulk(disagreeing[:max_disagreements]) if disagreeing else {}
    disagreements = [
        {
            "item": items[item_id],
            "votes": sorted((names.get(u, str(u)), label) for u, label in by_item[item_id].items()),
        }
        for item_id in disagreeing[:max_disagreements]
        if item_id in items
    ]
    # unresolved first
    disagreements.sort(key=lambda d: (bool(d["item"].final_label), d["item"].pk))
    return {
        "items": len(by_item),
        "labelers": len(names),
        "alpha": krippendorff_alpha_nominal(list(v.values()) for v in by_item.values()),
        "labels": labels,
        "pairs": pairs,
        "disagreement_count": len(disagreeing),
        "disagreements": disagreements,
    }

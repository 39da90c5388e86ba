"""What a fine-tune learns from and whether one is worth it: the labels (consensus of
the people who labeled each item), the gold set, the stopping signal."""

from collections import Counter, defaultdict

from django.db.models import Q

from annotator.models import Annotation, Item, ModelVersion, Project
from trainer.agreement import consensus


def _consensus_labels(project: Project, fields: tuple[str, ...]):
    """((pk, *fields), label) of each pool item with a consensus label (training_labels)."""
    votes: dict[int, Counter] = defaultdict(Counter)
    annotations = Annotation.objects.filter(item__project=project, item__split=Item.Split.POOL)
    if not project.bulk_labels_in_training:  # a project setting (docs/search.md)
        annotations = annotations.exclude(picked_by=Annotation.Picked.BULK)
    annotations = annotations.values_list("item_id", "label")
    for item_id, label in annotations.iterator(chunk_size=5000):
        votes[item_id][label] += 1
    items = (
        Item.objects.filter(project=project, split=Item.Split.POOL)
        .filter(Q(annotation_count__gt=0) | ~Q(final_label=""))
        .order_by("pk")
        .values_list("pk", *fields, "final_label")
    )
    for row in items.iterator(chunk_size=5000):
        label = consensus(row[-1], votes.get(row[0], Counter()))
        if label:
            yield row[:-1], label


def training_labels(project: Project) -> list[tuple[int, str, str]]:
    """(item_id, text, label) for pool items people labeled: the data a model trains on.

    The label is the adjudicated final label if any, else the majority of the
    annotations; ties are left out. Gold items never appear here, even when
    people labeled them.
    """
    return [(pk, text, label) for (pk, text), label in _consensus_labels(project, ("text",))]


def training_label_counts(project: Project) -> Counter:
    """Training labels per class of the project (training_labels, without reading a text)."""
    counts = Counter(label for _, label in _consensus_labels(project, ()))
    return Counter({name: counts[name] for name in project.label_names if counts[name]})


def gold_labels(project: Project) -> list[tuple[int, str, str]]:
    """(item_id, text, gold label) of the gold items whose label is one of the project's."""
    rows = (Item.objects.filter(project=project, split=Item.Split.GOLD).exclude(gold_label="")
            .order_by("pk").values_list("pk", "text", "gold_label"))
    return [row for row in rows if row[2] in project.label_names]


def version_training_labels(version: ModelVersion) -> list[tuple[int, str]]:
    """(item id, label) a version trained on: its run's snapshot, else today's labels."""
    run = version.training_run
    if run is not None and run.label_snapshot:
        return [(int(item_id), label) for item_id, label in run.label_snapshot]
    return [(item_id, label) for item_id, _, label in training_labels(version.project)]


def latest_version_if_nothing_new(project: Project):
    """The newest version a training run made, activated or not, if no pool label was added,
    changed or adjudicated since its run took the labels (a retrain would learn the same: a
    version the activation rule refused would be made and refused again); else None. None
    too where no version has a recorded run, or the newest was trained on another label set."""
    from annotator.models import ModelVersion

    newest = (ModelVersion.objects.filter(project=project, training_run__isnull=False)
              .select_related("training_run").order_by("-version").first())
    run = newest.training_run if newest else None
    if run is None or run.started_at is None or newest.label_names != project.label_names:
        return None
    since = run.started_at
    changed = Annotation.objects.filter(
        item__project=project, item__split=Item.Split.POOL, updated_at__gt=since
    ).exists() or Item.objects.filter(project=project, adjudicated_at__gt=since).exists()
    return None if changed else newest


def stale_ranked_count(project: Project) -> int:
    """Ranked items whose rank came from a version that is no longer the active one."""
    from annotator.models import ModelVersion

    active = ModelVersion.objects.filter(project=project, is_active=True).first()
    ranked = Item.objects.filter(project=project, priority__isnull=False)
    if active is None:
        return ranked.exclude(scored_version__isnull=True).count()
    return ranked.exclude(scored_version=active).count()


def stopping_signal_for(project: Project, *, window: int = 3, kappa: float = 0.99):
    """Should labeling stop? trainer.strategies.StopSignal over the project's versions.

    Compares the predictions of consecutive versions on the fixed stopping sample (pool
    items with the lowest random_key, predicted by every version) and the newest
    version's overall uncertainty. None until a version has predictions.
    """
    import numpy as np

    from annotator.models import ModelVersion, Prediction
    from trainer.strategies import stopping_signal

    names = project.label_names
    versions = list(
        ModelVersion.objects.filter(project=project, predictions__isnull=False)
        .distinct()
        .order_by("-version")[: window + 1]
    )[::-1]
    if not versions:
        return None
    per_version = []
    for version in versions:
        rows = Prediction.objects.filter(model_version=version).values_list(
            "item_id", "label", "probabilities"
        )
        per_version.append({item_id: (label, probs) for item_id, label, probs in rows})
    common = sorted(set.intersection(*(set(v) for v in per_version)))
    index = {name: i for i, name in enumerate(names)}
    predictions = [np.array([index.get(v[i][0], -1) for i in common]) for v in per_version]
    newest = np.array([per_version[-1][i][1] for i in common]) if common else None
    return stopping_signal(
        predictions, newest, num_classes=len(names), window=window, kappa=kappa
    )

"""Reads. Views, services and tasks ask here; nothing in this module writes (handing out
the next item leases it, so that is a service: services.labeling.item_next_claim)."""

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime, time

from django.core.cache import cache
from django.db.models import Count, Exists, F, JSONField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotator.models import Annotation, Item, Membership, ModelVersion, Project, VocabularyCheck
from trainer.agreement import consensus


def projects_for_user(user, *, include_archived: bool = False) -> QuerySet[Project]:
    """Staff see every project, others the projects they are members of; each project
    carries `managed`: may this user manage it (staff, or its project admin). An archived
    project is left out for those who do not manage it, unless `include_archived`."""
    if user.is_staff:
        return Project.objects.annotate(managed=Value(True))
    admin = Membership.objects.filter(project=OuterRef("pk"), user=user,
                                      role=Membership.Role.ADMIN)
    projects = Project.objects.filter(members=user).annotate(managed=Exists(admin))
    if not include_archived:
        projects = projects.filter(Q(archived_at__isnull=True) | Q(managed=True))
    return projects


def labelable_items(project: Project) -> QuerySet[Item]:
    """Items people label in this project: the pool, plus gold when the admin asked for it."""
    splits = [Item.Split.POOL]
    if project.label_gold_by_people:
        splits.append(Item.Split.GOLD)
    return Item.objects.filter(project=project, split__in=splits)


def queue_for(labeler, project: Project, *, exclude_ids: Iterable[int] = ()) -> QuerySet[Item]:
    """Items `labeler` may still be given, best first.

    This ordering is the one place the active-learning ranker changes: highest
    priority first, then the fixed random order (cold start: priority is empty).
    """
    already_labeled = Annotation.objects.filter(item=OuterRef("pk"), labeler=labeler)
    return (
        labelable_items(project)
        .filter(annotation_count__lt=F("required_labels"))
        .exclude(pk__in=list(exclude_ids))
        .exclude(Exists(already_labeled))
        .order_by(F("priority").desc(nulls_last=True), "random_key", "pk")
    )


def item_to_submit(labeler, *, project_id: int, item_id: int | None) -> Item | None:
    """The item `labeler` submits a label for, with its project, in one query; None if
    there is no such item in that project or the project is not theirs (staff: any).

    The item carries what annotation_submit would otherwise look up one by one:
    labeler_may_label (True), labeler_annotation_id (their earlier label, None if none),
    and the active model's prediction (provenance_version_id, prediction_label,
    prediction_probabilities; prediction_label None if none).
    """
    from annotator.models import Prediction

    if item_id is None:
        return None
    items = Item.objects.select_related("project").filter(pk=item_id, project_id=project_id)
    if not labeler.is_staff:
        items = items.filter(
            Exists(Membership.objects.filter(project=OuterRef("project_id"), user=labeler))
        )
    active = ModelVersion.objects.filter(project=OuterRef("project_id"), is_active=True)
    items = items.annotate(
        labeler_annotation_id=Subquery(
            Annotation.objects.filter(item=OuterRef("pk"), labeler=labeler).values("pk")[:1]
        ),
        provenance_version_id=Coalesce(
            "scored_version_id", Subquery(active.order_by("-version").values("pk")[:1])
        ),
    )
    prediction = Prediction.objects.filter(
        item=OuterRef("pk"), model_version_id=OuterRef("provenance_version_id")
    ).order_by("pk")
    items = items.annotate(
        prediction_label=Subquery(prediction.values("label")[:1]),
        prediction_probabilities=Subquery(
            prediction.values("probabilities")[:1], output_field=JSONField()
        ),
    )
    item = items.first()
    if item is not None:
        item.labeler_may_label = True
    return item


def last_annotation_of(labeler, project: Project) -> Annotation | None:
    return (
        Annotation.objects.filter(labeler=labeler, item__project=project)
        .select_related("item")
        .order_by("-created_at", "-pk")
        .first()
    )


def annotations_of(
    labeler, project: Project, *, text: str = "", label: str = ""
) -> QuerySet[Annotation]:
    """`labeler`'s annotations in `project`, newest first (the "My labels" page); `text`
    is searched in the item text, case-insensitively, `label` is matched exactly."""
    annotations = Annotation.objects.filter(labeler=labeler, item__project=project)
    if text:
        annotations = annotations.filter(item__text__icontains=text)
    if label:
        annotations = annotations.filter(label=label)
    return annotations.select_related("item").order_by("-created_at", "-pk")


# Counting a 100k-item project on every request costs more than the rest of the
# request; the project-wide figures may be a few seconds old.
PROJECT_PROGRESS_CACHE_SECONDS = 5


def project_progress(project: Project) -> dict:
    """Items with all their labels / items people label; cached a few seconds."""

    def count() -> dict:
        return labelable_items(project).aggregate(
            total=Count("pk"),
            done=Count("pk", filter=Q(annotation_count__gte=F("required_labels"))),
        )

    return cache.get_or_set(
        f"labeling-progress:{project.pk}", count, PROJECT_PROGRESS_CACHE_SECONDS
    )


def start_of_today() -> datetime:
    """Local midnight: "today" in the labelers' and the team lead's figures."""
    return timezone.make_aware(datetime.combine(timezone.localdate(), time.min))


def labeling_progress(labeler, project: Project) -> dict:
    """My labels today (exact) and project labeled / total (a few seconds old at most)."""
    mine_today = Annotation.objects.filter(
        labeler=labeler, item__project=project, created_at__gte=start_of_today()
    ).count()
    counts = project_progress(project)
    return {"mine_today": mine_today, "done": counts["done"], "total": counts["total"]}


def _consensus_labels(project: Project, fields: tuple[str, ...]):
    """((pk, *fields), label) of each pool item with a consensus label (training_labels)."""
    votes: dict[int, Counter] = defaultdict(Counter)
    annotations = Annotation.objects.filter(
        item__project=project, item__split=Item.Split.POOL
    ).values_list("item_id", "label")
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


# --- active learning ---------------------------------------------------------------



IDS_PER_QUERY = 5000  # SQLite caps the parameters of one statement (32,766)


def values_by_id(queryset, key: str, ids: list[int], field: str) -> dict:
    """{key: field} of the rows whose `key` is one of ids, one query per 5,000 ids."""
    found = {}
    for start in range(0, len(ids), IDS_PER_QUERY):
        chunk = ids[start:start + IDS_PER_QUERY]
        found.update(queryset.filter(**{f"{key}__in": chunk}).values_list(key, field))
    return found


def version_training_labels(version: ModelVersion) -> list[tuple[int, str]]:
    """(item id, label) a version trained on: its run's snapshot, else today's labels."""
    run = version.training_run
    if run is not None and run.label_snapshot:
        return [(int(item_id), label) for item_id, label in run.label_snapshot]
    return [(item_id, label) for item_id, _, label in training_labels(version.project)]


def suggestion_for(item: Item) -> tuple[str, float] | None:
    """(label, confidence) of the model that ranked `item` (the fast loop's head, refit every
    few labels, else the active version), only if the project shows suggestions.

    Off by default (Project.show_suggestions): a visible suggestion anchors labelers. Never
    on a gold item: the model's guess there would anchor the held-out labels it is judged by.
    """
    from annotator.models import Prediction

    if not item.project.show_suggestions or item.split == Item.Split.GOLD:
        return None
    if item.ranked_by_head_id and item.head_label:
        return item.head_label, float(item.head_confidence or 0.0)
    prediction = (
        Prediction.objects.filter(item=item, model_version__is_active=True)
        .values_list("label", "probabilities")
        .first()
    )
    if prediction is None:
        return None
    label, probabilities = prediction
    return label, float(max(probabilities))


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


def readability_for(project: Project) -> VocabularyCheck | None:
    """The newest check of the project's current model on a sample of all its texts."""
    return VocabularyCheck.objects.filter(project=project, import_job__isnull=True,
                                          model_name=project.effective_model_name).first()


def readability_blocks_schedule(project: Project) -> bool:
    """Scheduled retraining waits: the current model cannot read the project's texts and no
    admin confirmed it."""
    check = readability_for(project)
    return bool(check and check.unreadable
                and project.readability_confirmed_model != project.effective_model_name)

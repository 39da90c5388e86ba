"""Items pushed through the API (POST /api/projects/<id>/items/).

A push follows the file importer's rules, by calling its code: the same cleaning, label-set,
kind, turns and meta checks and the same dedupe by the clean text's sha256 (`Importer.add`),
the same bulk writer (`BulkWriter`: COPY on PostgreSQL), the same follow-ups (overlap,
readability check, cold-start seeding). Unlike a file, a push is small (settings.
API_MAX_PUSH_ITEMS rows), so it is written in one short transaction without staging, and a
bad row is rejected on its own (with its reason) instead of failing the whole request.

Idempotent by external_id: a row whose external_id the project already has creates nothing
and answers "exists" with that item's id, so a client may retry a request that timed out.
"""

from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction

from annotator.models import ImportIssue, ImportJob, Item, Project
from annotator.services.importing.errors import ImportRejected
from annotator.services.importing.formats import ByteCounter
from annotator.services.importing.jobs import (
    enqueue_embedding,
    enqueue_seeding,
    import_jobs_clear_dead,
)
from annotator.services.importing.rows import Importer
from annotator.services.labeling import project_apply_overlap
from annotator.services.monitoring import items_arrived
from annotator.services.readability import vocabulary_check_request

PUSH_FIELDS = ("text", "external_id", "label", "kind", "meta", "turns")


class PushConflict(Exception):
    """Another push or import wrote some of these texts meanwhile; a retry sorts it out."""


@dataclass
class PushResult:
    created: int = 0
    existing: int = 0
    duplicates: int = 0
    rejected: int = 0
    rows: list[dict] = field(default_factory=list)  # one per pushed row, in order


class _RowChecker(Importer):
    """The importer's row rules without an import job: its notes become row results."""

    def __init__(self, project: Project) -> None:
        super().__init__(
            project=project, text_column="text", label_column="label", id_column="external_id",
            meta_columns=["meta"], kind_column="kind", turns_column="turns",
            split=Item.Split.POOL, skip_invalid=True, job=ImportJob(), counter=ByteCounter(),
        )
        self.notes: dict[int, tuple[str, str]] = {}

    def note(self, line: int, kind: str, reason: str, row: dict) -> None:
        if kind == ImportIssue.Kind.DUPLICATE:
            reason = "duplicate: same clean text as an earlier row of this request"
        self.notes[line] = ("duplicate" if kind == ImportIssue.Kind.DUPLICATE else "rejected",
                            reason)


def _shape_problem(row) -> str:
    if not isinstance(row, dict):
        return "expected an object like {\"text\": \"...\"}"
    unknown = sorted(set(row) - set(PUSH_FIELDS), key=str)
    if unknown:
        return (f"unknown field(s) {', '.join(map(repr, unknown))}; "
                f"an item has {', '.join(PUSH_FIELDS)}")
    if not isinstance(row.get("external_id", ""), str | int) or isinstance(
            row.get("external_id"), bool):
        return "external_id must be a string or an integer"
    if row.get("meta") is not None and not isinstance(row["meta"], dict):
        return "meta must be an object"
    for name in ("label", "kind"):
        if row.get(name) is not None and not isinstance(row[name], str):
            return f"{name} must be a string"
    return ""


def items_push(*, project: Project, rows: list) -> PushResult:
    """Create the items of `rows` (dicts of PUSH_FIELDS) that are new to `project`.

    Each row answers created (with the new item's id), exists (its external_id is known),
    duplicate (its clean text is in the project or earlier in the request) or rejected
    (with the reason). PushConflict when a concurrent write took one of the texts first.
    """
    checker = _RowChecker(project)
    results: list[dict] = [{"index": index} for index in range(len(rows))]
    ids = {str(row["external_id"]).strip()[:200] for row in rows
           if isinstance(row, dict) and row.get("external_id") not in (None, "")}
    known = dict(Item.objects.filter(project=project, external_id__in=ids)
                 .values_list("external_id", "id")) if ids else {}
    first_with_id: dict[str, int] = {}
    for index, row in enumerate(rows):
        problem = _shape_problem(row)
        if problem:
            results[index].update(status="rejected", reason=problem)
            continue
        external_id = checker.value(row, "external_id")[:200]
        if external_id in known:
            results[index].update(status="exists", item_id=known[external_id])
            continue
        if external_id and external_id in first_with_id:
            results[index].update(status="duplicate", reason=(
                f"same external_id as row {first_with_id[external_id]} of this request"))
            continue
        try:
            checker.add(index, row)
        except ImportRejected as exc:  # a file-level error in the importer; here one row's
            results[index].update(status="rejected", reason=exc.reason)
            continue
        if external_id:
            first_with_id[external_id] = index
    for index, (status, reason) in checker.notes.items():
        results[index].update(status=status, reason=reason)

    hashes = [values["content_hash"] for _, values, _ in checker.batch]
    in_project = dict(Item.objects.filter(project=project, content_hash__in=hashes)
                      .values_list("content_hash", "id")) if hashes else {}
    new = []
    for index, values, _ in checker.batch:
        if values["content_hash"] in in_project:
            results[index].update(status="duplicate", item_id=in_project[values["content_hash"]],
                                  reason="duplicate: the project already has this text")
        else:
            new.append((index, {**values, "staged": False, "import_job_id": None}))
    if new:  # a killed import's staged copies of these texts must not block them
        import_jobs_clear_dead(project=project,
                               content_hashes=[values["content_hash"] for _, values in new])
    prepared = checker.items.prepare([values for _, values in new])
    try:
        with transaction.atomic():
            checker.items.write(prepared)
            created = dict(Item.objects.filter(
                project=project, content_hash__in=[values["content_hash"] for _, values in new]
            ).values_list("content_hash", "id")) if new else {}
            if new:
                _items_created(project=project, item_ids=list(created.values()))
    except IntegrityError:
        raise PushConflict("another push or import added some of these texts meanwhile; "
                           "send the request again (rows already there answer "
                           "exists or duplicate)") from None
    for index, values in new:
        results[index].update(status="created", item_id=created[values["content_hash"]])

    counts = Counter(result["status"] for result in results)
    return PushResult(created=counts["created"], existing=counts["exists"],
                      duplicates=counts["duplicate"], rejected=counts["rejected"], rows=results)


def _items_created(*, project: Project, item_ids: list[int]) -> None:
    """What an import does once its pool items are published (inside its transaction)."""
    if project.overlap_percent:
        project_apply_overlap(project)
    # a stream of pushes asks at most once per window: a check costs a worker ~1.5 s of the
    # scoring queue, which live predictions share (bench/monitoring_latency.py)
    if cache.add(f"readability-requested:{project.pk}", True,
                 timeout=settings.PUSH_READABILITY_EVERY_SECONDS):
        vocabulary_check_request(project=project)
    if not project.model_versions.filter(is_active=True).exists():
        transaction.on_commit(lambda: enqueue_seeding(project.pk))
    if project.fast_loop_every and cache.add(f"embedding-requested:{project.pk}", True,
                                             timeout=settings.PUSH_EMBED_EVERY_SECONDS):
        transaction.on_commit(lambda: enqueue_embedding(project.pk))
    transaction.on_commit(lambda: items_arrived(project_id=project.pk, item_ids=item_ids))

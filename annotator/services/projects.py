"""Writes of the project pages: create a project, change its settings and its label set,
archive it. The label set's rules live in annotator/lib/labelsets.py."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from annotator.lib.labelsets import label_name_normalized, validate_label_set
from annotator.models import Project
from annotator.selectors.projects import LABEL_COLUMNS, label_usage


def project_create(*, fields: dict, labels: list[dict]) -> Project:
    project = Project(**fields, labels=labels)
    project.full_clean()
    project.save()
    return project


def project_update(*, project: Project, fields: dict) -> list[str]:
    """Save settings (the label set changes through label_set_update); returns notes on the
    follow-up work that started, for the person who saved."""
    with transaction.atomic():
        saved = Project.objects.select_for_update().get(pk=project.pk)
        changed = {name for name, value in fields.items() if getattr(saved, name) != value}
        for name, value in fields.items():
            setattr(saved, name, value)
        saved.full_clean()
        # only these fields: a label set changed meanwhile on the Labels page stays
        saved.save(update_fields=list(fields))
        notes = project_settings_applied(project=saved, changed=changed)
    for name, value in fields.items():
        setattr(project, name, value)
    return notes


def project_settings_applied(*, project: Project, changed: set[str]) -> list[str]:
    """The work that changed settings call for (the app's pages and the Django admin)."""
    notes = []
    if "model_name" in changed and project.items.exists():
        from annotator.services.readability import vocabulary_check_request

        vocabulary_check_request(project=project)
        notes.append(f"A worker is checking whether {project.effective_model_name} can read "
                     "this project's texts (see its Models page).")
    if {"overlap_percent", "overlap_labelers"} & changed:
        from annotator.services.labeling import project_apply_overlap

        count = project_apply_overlap(project)
        notes.append(f"{count} pool items now go to {project.overlap_labelers} labelers.")
    return notes


def _relabel(project: Project, renamed: dict[str, str]) -> None:
    """Write the new names wherever the old ones are stored, one UPDATE per column: a CASE
    swaps two names (a -> b, b -> a) where updates one after the other would merge them."""
    if not renamed:
        return
    for rows, scope, column, _what in LABEL_COLUMNS:
        new_name = Case(*(When(**{column: old}, then=Value(new)) for old, new in renamed.items()),
                        default=F(column))
        rows.filter(**{scope: project, f"{column}__in": list(renamed)}).update(
            **{column: new_name})


def label_set_update(*, project: Project, labels: list[dict],
                     renamed: dict[str, str] | None = None) -> None:
    """Replace the project's label set with `labels` (in their order).

    `renamed` maps old names to new ones: the annotations, gold, imported and adjudicated
    labels follow. A current label that is neither in `labels` nor renamed is deleted,
    which is refused while anything uses it. A stored name from before names were
    normalised ("ｐｏｓｉｔｉｖｅ") that `labels` gives normalised ("positive") is renamed.
    """
    labels = validate_label_set(labels)
    renamed = {old: label_name_normalized(new) for old, new in (renamed or {}).items()}
    renamed = {old: new for old, new in renamed.items() if old != new}
    new_names = {label["name"] for label in labels}
    with transaction.atomic():
        current = Project.objects.select_for_update().get(pk=project.pk).label_names
        for name in current:
            if name not in new_names and name not in renamed and (
                    label_name_normalized(name) in new_names):
                renamed[name] = label_name_normalized(name)
        stale = [old for old in renamed if old not in current]
        if stale:
            raise ValidationError(
                f"{', '.join(map(repr, stale))} is no longer a label of this project (someone "
                "changed the label set meanwhile): reload the page and try again.")
        lost = [new for new in renamed.values() if new not in new_names]
        if lost:
            raise ValidationError(f"Renamed to {', '.join(map(repr, lost))}, which is not in "
                                  "the new label set.")
        deleted = [name for name in current if name not in new_names and name not in renamed]
        in_use = label_usage(project, deleted)
        if in_use:
            raise ValidationError([
                f"Label {name!r} cannot be deleted: it is in use ({', '.join(uses)}). "
                "Rename it instead, or change those labels first."
                for name, uses in in_use.items()
            ])
        _relabel(project, renamed)
        Project.objects.filter(pk=project.pk).update(labels=labels)
    project.labels = labels


def label_rename(*, project: Project, old: str, new: str) -> None:
    new = label_name_normalized(new)
    labels = [{**label, "name": new} if label["name"] == old else label
              for label in project.label_set]
    label_set_update(project=project, labels=labels, renamed={old: new})


def label_add(*, project: Project, name: str, key: str = "", color: str = "") -> None:
    label_set_update(project=project, labels=[*project.label_set,
                                              {"name": name, "key": key, "color": color}])


def label_delete(*, project: Project, name: str) -> None:
    labels = [label for label in project.label_set if label["name"] != name]
    label_set_update(project=project, labels=labels)


def label_reorder(*, project: Project, names: list[str]) -> None:
    """Put the labels in the order of `names` (which must name each label once)."""
    by_name = {label["name"]: label for label in project.label_set}
    if sorted(names) != sorted(by_name):
        raise ValidationError("Give every label of the project once to reorder them.")
    label_set_update(project=project, labels=[by_name[name] for name in names])


def project_archive(*, project: Project) -> None:
    """Close the project: labelers no longer see it and it takes no labels; nothing is lost."""
    Project.objects.filter(pk=project.pk, archived_at__isnull=True).update(
        archived_at=timezone.now())
    project.refresh_from_db(fields=["archived_at"])


def project_unarchive(*, project: Project) -> None:
    Project.objects.filter(pk=project.pk).update(archived_at=None)
    project.archived_at = None

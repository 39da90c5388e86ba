"""Projects: which a user may see (one answer for the pages and the API), what uses a label."""

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Value

from annotator.models import Annotation, Item, Membership, Project

# Where a label's name is written besides the label set: (rows, project lookup, column, what).
# Predictions, Annotation.predicted_label and ModelVersion.label_names keep the names the
# model was trained with; the next training run uses the new ones.
LABEL_COLUMNS = [
    (Annotation.objects, "item__project", "label", "annotations"),
    (Item.with_staged, "project", "gold_label", "gold labels"),
    (Item.with_staged, "project", "imported_label", "imported labels"),
    (Item.with_staged, "project", "final_label", "adjudicated labels"),
]


def label_usage(project: Project, names: list[str]) -> dict[str, list[str]]:
    """What uses each of `names`, e.g. {"joy": ["annotations: 12", "gold labels: 3"]}; names
    nothing uses are left out."""
    usage: dict[str, list[str]] = {}
    for rows, scope, column, what in LABEL_COLUMNS:
        counts = (rows.filter(**{scope: project, f"{column}__in": names})
                  .values_list(column).annotate(n=Count("pk")).order_by(column))
        for name, count in counts:
            usage.setdefault(name, []).append(f"{what}: {count}")
    return usage


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

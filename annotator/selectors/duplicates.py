"""Groups of near-duplicates as the pages and the API show them (services/near_duplicates.py
finds them): biggest first, with how many are still open."""

from django.db.models import Count, Q, QuerySet

from annotator.models import Item, Project


def duplicate_groups(project: Project, *, limit: int = 50) -> list[dict]:
    """The biggest groups: {"group", "size", "open", "text"} (the text of its first item)."""
    rows = list(Item.objects.filter(project=project, split=Item.Split.POOL,
                                    duplicate_group__isnull=False)
                .values("duplicate_group")
                .annotate(size=Count("pk"), open=Count("pk", filter=Q(annotation_count=0)))
                .order_by("-size", "duplicate_group")[:limit])
    texts = dict(Item.objects.filter(pk__in=[row["duplicate_group"] for row in rows])
                 .values_list("pk", "text"))
    return [{"group": row["duplicate_group"], "size": row["size"], "open": row["open"],
             "text": texts.get(row["duplicate_group"], "")} for row in rows]


def group_items(project: Project, group: int) -> QuerySet[Item]:
    """The pool items of one group, oldest first."""
    return Item.objects.filter(project=project, split=Item.Split.POOL,
                               duplicate_group=group).order_by("pk")


def near_duplicate_count(item: Item) -> int:
    """How many other open items share the item's group (0: none, or not computed yet)."""
    if item.duplicate_group is None:
        return 0
    return (Item.objects.filter(project_id=item.project_id, duplicate_group=item.duplicate_group,
                                annotation_count=0).exclude(pk=item.pk).count())

"""Reads of the people page: a project's members with their progress and agreement, and
the user an invitation link is for."""

from collections import Counter

from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.db.models import Count, Max, Q
from django.utils.http import urlsafe_base64_decode

from annotator.models import Annotation, Membership, Project
from annotator.selectors.agreement import project_agreement
from annotator.selectors.progress import start_of_today


def _agreement_by_username(project: Project) -> dict[str, dict]:
    """Each labeler's raw agreement with the others, over every pair of labels they share
    with someone on an overlap item (the pairs of the agreement page, summed per person)."""
    compared, agreed = Counter(), Counter()
    for pair in project_agreement(project, max_disagreements=0)["pairs"]:
        for name in (pair["a"], pair["b"]):
            compared[name] += pair["items"]
            agreed[name] += pair["agreement"] * pair["items"]
    return {name: {"compared": n, "share": agreed[name] / n} for name, n in compared.items()}


def project_members(project: Project) -> list[dict]:
    """Members with role, labels today / in total in this project, last label, agreement."""
    memberships = list(
        Membership.objects.filter(project=project)
        .select_related("user")
        .order_by("user__username")
    )
    counts = {
        row["labeler"]: row
        for row in Annotation.objects.filter(
            item__project=project, labeler__in=[m.user_id for m in memberships]
        )
        .values("labeler")
        .annotate(total=Count("pk"), today=Count("pk", filter=Q(created_at__gte=start_of_today())),
                  last=Max("created_at"))
    }
    agreement = _agreement_by_username(project)
    rows = []
    for membership in memberships:
        user, done = membership.user, counts.get(membership.user_id, {})
        rows.append({
            "membership": membership,
            "user": user,
            "pending": not user.has_usable_password(),  # invited, no password set yet
            "today": done.get("today", 0),
            "total": done.get("total", 0),
            "last": done.get("last"),
            "agreement": agreement.get(user.username),
        })
    return rows


def invited_user(uidb64: str, token: str):
    """The user an invitation link is for; None when the link is wrong, expired or used."""
    User = get_user_model()
    try:
        user = User.objects.get(pk=urlsafe_base64_decode(uidb64).decode())
    except (TypeError, ValueError, OverflowError, ValidationError, User.DoesNotExist):
        return None
    # only accounts that never had a password: a link can never take over a working one
    if user.has_usable_password() or user.is_staff or user.is_superuser or not user.is_active:
        return None
    return user if default_token_generator.check_token(user, token) else None

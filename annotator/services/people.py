"""Writes of the people page: add, invite, change the role of and remove project members.

New users get an invitation link rather than a password: it is a one-time set-password
link (Django's password-reset token), valid for settings.PASSWORD_RESET_TIMEOUT, and it
stops working once the password is set.
"""

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from annotator.models import Membership, Project
from annotator.services.labeling import labeler_leases_release


def _check_role(role: str) -> None:
    if role not in Membership.Role.values:
        raise ValidationError(f"unknown role {role!r}")


def _find_user(who: str):
    User = get_user_model()
    active = User.objects.filter(is_active=True)
    exact = active.filter(username=who).first()
    if exact is not None:
        return exact
    matches = list(active.filter(Q(username__iexact=who) | Q(email__iexact=who))[:2])
    if not matches:
        raise ValidationError(f"No user {who!r}: invite them as a new user instead.")
    if len(matches) > 1:
        raise ValidationError(f"{who!r} matches several users: give the exact username.")
    return matches[0]


def member_add(*, project: Project, who: str, role: str = Membership.Role.LABELER) -> Membership:
    """Make the existing user named `who` (username or e-mail) a member of `project`."""
    _check_role(role)
    user = _find_user(who.strip())
    membership, created = Membership.objects.get_or_create(
        project=project, user=user, defaults={"role": role}
    )
    if not created:
        raise ValidationError(f"{user.username} is already a member of {project.name}.")
    return membership


def member_invite(*, project: Project, username: str, email: str = "",
                  role: str = Membership.Role.LABELER):
    """Create a user without a password and make them a member of `project`; they set
    their password through the link of invitation_make."""
    _check_role(role)
    User = get_user_model()
    username, email = username.strip(), User.objects.normalize_email(email.strip())
    # Django's username check is case-sensitive: "Lena" and "lena" would be two people
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError(f"The username {username!r} is taken: add that user instead.")
    if email and User.objects.filter(email__iexact=email).exists():
        raise ValidationError(f"A user with the e-mail {email} exists: add them by e-mail.")
    user = User(username=username, email=email)
    user.set_unusable_password()
    user.full_clean()
    try:
        with transaction.atomic():
            user.save()
            Membership.objects.create(project=project, user=user, role=role)
    except IntegrityError:  # the same username, invited twice at once
        raise ValidationError(f"The username {username!r} is taken.") from None
    return user


def invitation_make(*, user, by) -> tuple[str, str]:
    """(uidb64, token) of a one-time set-password link for `user`, who has no password yet.

    Whoever sets the password owns the account, so `by` may invite only people who are
    in no project but the ones `by` manages (staff: anyone), and never staff accounts.
    """
    if user.is_staff or user.is_superuser or not user.is_active:
        raise ValidationError(f"{user.username} cannot be invited: ask a site admin.")
    if user.has_usable_password():
        raise ValidationError(f"{user.username} has a password already: they log in with it.")
    if not by.is_staff:
        managed = Membership.objects.filter(user=by, role=Membership.Role.ADMIN).values("project")
        if Membership.objects.filter(user=user).exclude(project__in=managed).exists():
            raise ValidationError(
                f"{user.username} is also in projects you do not manage: ask a site admin."
            )
    return urlsafe_base64_encode(force_bytes(user.pk)), default_token_generator.make_token(user)


def invitation_accept(*, user, password: str) -> None:
    """Set the invited user's first password (which also makes their link invalid)."""
    password_validation.validate_password(password, user)
    unset = user.password
    user.set_password(password)
    # conditional: of two tabs submitting the same link at once, only one sets the password
    if get_user_model().objects.filter(pk=user.pk, password=unset).update(
        password=user.password
    ) != 1:
        raise ValidationError("This invitation has just been used.")


def _check_keeps_an_admin(membership: Membership, *, by) -> None:
    """Only staff may leave a project without a project admin: the last one cannot step
    down or leave (nobody but staff could manage the project afterwards)."""
    if by.is_staff or membership.role != Membership.Role.ADMIN:
        return
    # every admin row locked: two admins demoting each other at once cannot both succeed
    admins = Membership.objects.select_for_update().filter(
        project_id=membership.project_id, role=Membership.Role.ADMIN
    )
    if set(admins.values_list("pk", flat=True)) <= {membership.pk}:
        raise ValidationError(
            f"{membership.user.username} is the project's only admin: "
            "make someone else admin first."
        )


def member_role_set(*, membership: Membership, role: str, by) -> Membership:
    _check_role(role)
    with transaction.atomic():
        if role != Membership.Role.ADMIN:
            _check_keeps_an_admin(membership, by=by)
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def member_remove(*, membership: Membership, by) -> None:
    """Take the user out of the project: their leases there go back to the queue, their
    annotations stay."""
    with transaction.atomic():
        _check_keeps_an_admin(membership, by=by)
        membership.delete()
        labeler_leases_release(labeler=membership.user, project=membership.project)

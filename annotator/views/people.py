"""The people page of a project (staff and the project's admins): add existing users,
invite new ones, change roles, remove members. And the invitation page, where an invited
user sets a password."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import SetPasswordForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotator.forms.people import AddMemberForm, InviteForm, RoleForm
from annotator.models import Membership, Project
from annotator.permissions import can_manage, managed_project
from annotator.selectors import people as selectors_people
from annotator.services import people

INVITATION_KEY = "people:invitation"  # the link to show once, on the next people page








def _errors(error: ValidationError) -> str:
    return " ".join(error.messages)


def _form_errors(form: forms.Form) -> str:
    return " ".join(f"{form.fields[field].label or field}: {' '.join(errors)}"
                    for field, errors in form.errors.items())


def _member(project: Project, user_id: int) -> Membership:
    return get_object_or_404(Membership.objects.select_related("user"), project=project,
                             user_id=user_id)


def _show_invitation(request: HttpRequest, user, by) -> None:
    """Put the user's invitation link in the session for the next people page."""
    try:
        uidb64, token = people.invitation_make(user=user, by=by)
    except ValidationError as error:
        messages.error(request, _errors(error))
        return
    url = invitation_link(request, uidb64, token)
    request.session[INVITATION_KEY] = {"username": user.username, "url": url}


def invitation_link(request: HttpRequest, uidb64: str, token: str) -> str:
    """The link to send: the token after "#", which browsers never send to a server, so it
    is in no access log (the page posts it: invitation.js)."""
    return request.build_absolute_uri(reverse("invitation_accept")) + f"#{uidb64}/{token}"


def _back(request: HttpRequest, project: Project) -> HttpResponse:
    """To the people page, or to the project list if the user just gave up managing it."""
    if can_manage(request.user, project):
        return redirect("people", project_id=project.pk)
    return redirect("project_list")


@login_required
@require_GET
def people_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project = managed_project(request.user, project_id)
    return render(request, "annotator/people/people.html", {
        "project": project,
        "members": selectors_people.project_members(project),
        "roles": Membership.Role.choices,
        "add_form": AddMemberForm(auto_id="add-%s"),  # two role fields on one page
        "invite_form": InviteForm(auto_id="invite-%s"),
        "invitation": request.session.pop(INVITATION_KEY, None),
        "invitation_days": round(settings.PASSWORD_RESET_TIMEOUT / 86400, 1),
    })


@login_required
@require_POST
def member_add(request: HttpRequest, project_id: int) -> HttpResponse:
    project = managed_project(request.user, project_id)
    form = AddMemberForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return _back(request, project)
    try:
        membership = people.member_add(project=project, **form.cleaned_data)
    except ValidationError as error:
        messages.error(request, _errors(error))
    else:
        messages.success(request, f"{membership.user.username} joined {project.name} as "
                                  f"{membership.get_role_display().lower()}.")
    return _back(request, project)


@login_required
@require_POST
def member_invite(request: HttpRequest, project_id: int) -> HttpResponse:
    project = managed_project(request.user, project_id)
    form = InviteForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return _back(request, project)
    try:
        user = people.member_invite(project=project, **form.cleaned_data)
    except ValidationError as error:
        messages.error(request, _errors(error))
    else:
        _show_invitation(request, user, request.user)
    return _back(request, project)


@login_required
@require_POST
def member_invitation(request: HttpRequest, project_id: int, user_id: int) -> HttpResponse:
    """A new invitation link for a member who has not set a password yet."""
    project = managed_project(request.user, project_id)
    _show_invitation(request, _member(project, user_id).user, request.user)
    return _back(request, project)


@login_required
@require_POST
def member_role(request: HttpRequest, project_id: int, user_id: int) -> HttpResponse:
    project = managed_project(request.user, project_id)
    membership = _member(project, user_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return _back(request, project)
    try:
        people.member_role_set(membership=membership, role=form.cleaned_data["role"],
                               by=request.user)
    except ValidationError as error:
        messages.error(request, _errors(error))
    else:
        messages.success(request, f"{membership.user.username} is now "
                                  f"{membership.get_role_display().lower()}.")
    return _back(request, project)


@login_required
@require_POST
def member_remove(request: HttpRequest, project_id: int, user_id: int) -> HttpResponse:
    project = managed_project(request.user, project_id)
    membership = _member(project, user_id)
    try:
        people.member_remove(membership=membership, by=request.user)
    except ValidationError as error:
        messages.error(request, _errors(error))
    else:
        messages.success(request, f"{membership.user.username} left {project.name}; "
                                  "their labels stay.")
    return _back(request, project)


@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest) -> HttpResponse:
    """GET: a page whose script posts the link's token from its "#" part. POST uidb64 and
    token: the set-password form; with the passwords as well: set it and log in."""
    if request.method == "GET":
        return render(request, "annotator/people/invitation.html", {"opening": True})
    uidb64, token = request.POST.get("uidb64", ""), request.POST.get("token", "")
    user = selectors_people.invited_user(uidb64, token)
    if user is None:
        return render(request, "annotator/people/invitation.html", {"invalid": True})
    form = SetPasswordForm(user, request.POST if "new_password1" in request.POST else None)
    if form.is_valid():
        try:
            people.invitation_accept(user=user, password=form.cleaned_data["new_password1"])
        except ValidationError as error:
            form.add_error(None, error)
        else:
            login(request, user)
            messages.success(request, f"Welcome, {user.username}: your password is set.")
            return redirect("project_list")
    return render(request, "annotator/people/invitation.html", {
        "form": form, "invited": user, "uidb64": uidb64, "token": token})


@require_GET
def invitation_link_moved(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    """A link sent before the token moved after "#" (this request's path, with the token,
    is logged once more); the same invitation at its new address."""
    return redirect(invitation_link(request, uidb64, token))

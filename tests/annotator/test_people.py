"""The people page: who may open it, adding, inviting, roles, removal, progress, and the
invitation link."""

import re
from datetime import timedelta
from html import unescape

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from annotator.models import Annotation, Item, Membership
from annotator.selectors import people as selectors_people
from annotator.services import people
from annotator.services.labeling import item_next_claim
from tests.annotator.labeling_factories import label_as, make_items
from tests.conftest import PASSWORD

User = get_user_model()


@pytest.fixture
def newcomer(db):
    return User.objects.create_user("nick", email="Nick@Example.com", password=PASSWORD)


def _page(project):
    return reverse("people", args=[project.pk])


def _endpoints(project, member):
    return [
        ("get", _page(project), {}),
        ("post", reverse("member_add", args=[project.pk]), {"who": "nick", "role": "labeler"}),
        ("post", reverse("member_invite", args=[project.pk]), {"username": "new", "role": "admin"}),
        ("post", reverse("member_role", args=[project.pk, member.pk]), {"role": "admin"}),
        ("post", reverse("member_remove", args=[project.pk, member.pk]), {}),
        ("post", reverse("member_invitation", args=[project.pk, member.pk]), {}),
    ]


def _text(response) -> str:
    return unescape(response.content.decode())


def _uidb64(user) -> str:
    return urlsafe_base64_encode(force_bytes(user.pk))


def _invitation_url(response) -> str:
    return re.search(r'value="(http[^"]+/invite/[^"]+)"', response.content.decode()).group(1)


def _redeem(client, link: str, **passwords):
    """What the invitation page does with its link: post the uidb64 and token after "#"."""
    uidb64, _, token = link.partition("#")[2].partition("/")
    return client.post(reverse("invitation_accept"),
                       {"uidb64": uidb64, "token": token, **passwords})


# --- who may -----------------------------------------------------------------------------


def test_anonymous_users_are_sent_to_login(client, project, labeler, newcomer):
    for method, url, data in _endpoints(project, labeler):
        response = getattr(client, method)(url, data)
        assert response.status_code == 302 and reverse("login") in response["Location"], url
    assert Membership.objects.count() == 1


def test_labelers_get_403(labeler_client, project, labeler, newcomer):
    for method, url, data in _endpoints(project, labeler):
        assert getattr(labeler_client, method)(url, data).status_code == 403, url
    assert Membership.objects.get().role == Membership.Role.LABELER


def test_the_admin_of_another_project_gets_403(client, other_lead, project, labeler, newcomer):
    client.force_login(other_lead)
    for method, url, data in _endpoints(project, labeler):
        assert getattr(client, method)(url, data).status_code == 403, url
    assert set(Membership.objects.values_list("user__username", flat=True)) == {"lena", "olga"}


def test_staff_manage_the_people_of_any_project(admin_client, project, labeler):
    assert admin_client.get(_page(project)).status_code == 200
    admin_client.post(reverse("member_role", args=[project.pk, labeler.pk]), {"role": "admin"})
    assert Membership.objects.get(user=labeler).role == Membership.Role.ADMIN


def test_a_member_of_another_project_is_404_on_the_member_urls(lead_client, project, outsider):
    url = reverse("member_remove", args=[project.pk, outsider.pk])
    assert lead_client.post(url).status_code == 404
    assert Membership.objects.filter(user=outsider).exists()


def test_the_project_list_links_the_people_page_for_managers_only(
    lead_client, project, other_project, labeler, client
):
    html = lead_client.get(reverse("project_list")).content.decode()
    assert _page(project) in html
    client.force_login(labeler)
    assert _page(project) not in client.get(reverse("project_list")).content.decode()


# --- adding and inviting ------------------------------------------------------------------


def test_a_project_admin_adds_an_existing_user_by_username(lead_client, project, newcomer):
    response = lead_client.post(reverse("member_add", args=[project.pk]),
                                {"who": "nick", "role": "labeler"}, follow=True)
    assert Membership.objects.get(user=newcomer, project=project).role == Membership.Role.LABELER
    assert "nick joined Shoes as labeler" in response.content.decode()


def test_an_existing_user_is_found_by_email_whatever_the_case(project, newcomer):
    membership = people.member_add(project=project, who=" nick@example.COM ", role="admin")
    assert membership.user == newcomer and membership.role == Membership.Role.ADMIN


@pytest.mark.parametrize("who,message", [
    ("nobody", "No user 'nobody'"),
    ("lena", "lena is already a member of Shoes"),
])
def test_adding_an_unknown_user_or_a_member_says_why(lead_client, project, labeler, who, message):
    response = lead_client.post(reverse("member_add", args=[project.pk]),
                                {"who": who, "role": "labeler"}, follow=True)
    assert message in _text(response)
    assert Membership.objects.filter(project=project).count() == 2


def test_an_invited_user_has_no_password_and_the_page_shows_the_link_once(lead_client, project):
    response = lead_client.post(reverse("member_invite", args=[project.pk]),
                                {"username": "mia", "email": "mia@example.com", "role": "labeler"},
                                follow=True)
    mia = User.objects.get(username="mia")
    assert not mia.has_usable_password() and mia.email == "mia@example.com"
    assert Membership.objects.get(user=mia).role == Membership.Role.LABELER
    assert "/invite/" in _invitation_url(response)
    assert "/invite/" not in lead_client.get(_page(project)).content.decode()


@pytest.mark.parametrize("username,email,message", [
    ("NICK", "", "The username 'NICK' is taken"),
    ("nicky", "nick@example.com", "A user with the e-mail nick@example.com exists"),
    ("bad name!", "", "Enter a valid username"),
])
def test_inviting_a_taken_name_or_email_says_why(project, newcomer, username, email, message):
    with pytest.raises(ValidationError, match=message):
        people.member_invite(project=project, username=username, email=email)
    assert User.objects.count() == 1


# --- the invitation link ------------------------------------------------------------------


@pytest.fixture
def invitation(lead_client, project):
    response = lead_client.post(reverse("member_invite", args=[project.pk]),
                                {"username": "mia", "role": "labeler"}, follow=True)
    lead_client.logout()
    return _invitation_url(response)


def test_the_invited_user_sets_a_password_and_is_logged_in(client, invitation, project):
    assert "Choose your password" in _redeem(client, invitation).content.decode()
    new_password = "a long new password 42"
    response = _redeem(client, invitation, new_password1=new_password,
                       new_password2=new_password)
    assert response.status_code == 302 and response["Location"] == reverse("project_list")
    assert User.objects.get(username="mia").check_password(new_password)
    assert "Shoes" in client.get(reverse("project_list")).content.decode()


def test_a_used_invitation_link_is_refused_with_a_clear_message(client, invitation):
    new_password = "a long new password 42"
    _redeem(client, invitation, new_password1=new_password, new_password2=new_password)
    client.logout()
    response = _redeem(client, invitation)
    assert "This invitation link is not valid" in response.content.decode()
    response = _redeem(client, invitation, new_password1="another password 77",
                       new_password2="another password 77")
    assert "not valid" in response.content.decode()
    assert User.objects.get(username="mia").check_password(new_password)


def test_a_weak_or_mismatched_password_is_refused_and_the_link_still_works(client, invitation):
    response = _redeem(client, invitation, new_password1="123", new_password2="123")
    assert "This password is too short" in response.content.decode()
    response = _redeem(client, invitation, new_password1="a long new password 42",
                       new_password2="a long new password 43")
    assert "didn’t match" in _text(response)
    assert not User.objects.get(username="mia").has_usable_password()
    assert "Choose your password" in _redeem(client, invitation).content.decode()


def test_an_expired_or_mangled_link_is_refused(client, invitation, monkeypatch, settings):
    later = timezone.now() + timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT + 60)
    monkeypatch.setattr(default_token_generator, "_now", lambda: later.replace(tzinfo=None))
    assert "not valid" in _redeem(client, invitation).content.decode()
    monkeypatch.undo()
    for link in (invitation[:-3] + "xyz", "/invite/#Zm9v/abc-123", "/invite/#%%%/x",
                 "/invite/#", invitation.partition("/")[0]):
        assert "not valid" in _redeem(client, link).content.decode(), link


def test_the_invitation_token_is_in_no_requested_path_so_in_no_access_log(client, invitation):
    """The token rides after "#" (never sent by a browser) and in POST bodies; a server or
    proxy access log, which prints the path and query, never sees it."""
    token = invitation.partition("#")[2].partition("/")[2]
    assert invitation.startswith("http://testserver/invite/#") and len(token) > 20
    opened = client.get(invitation)  # what a browser requests: the path without "#..."
    assert "invitation.js" in opened.content.decode()
    responses = [opened, _redeem(client, invitation),
                 _redeem(client, invitation, new_password1="a long new password 42",
                         new_password2="a long new password 42")]
    assert responses[-1].status_code == 302
    for response in responses:
        assert token not in response.wsgi_request.get_full_path()
    assert token not in responses[-1]["Location"]


def test_a_link_sent_before_the_move_leads_to_the_same_invitation(client, invitation):
    uidb64, _, token = invitation.partition("#")[2].partition("/")
    response = client.get(f"/invite/{uidb64}/{token}/")
    assert response.status_code == 302 and response["Location"] == invitation


def test_an_invitation_never_opens_an_account_that_has_a_password(newcomer, lead):
    with pytest.raises(ValidationError, match="has a password already"):
        people.invitation_make(user=newcomer, by=lead)
    # nor does a valid token made elsewhere (Django's password reset makes the same kind)
    token = default_token_generator.make_token(newcomer)
    assert selectors_people.invited_user(_uidb64(newcomer), token) is None


def test_a_project_admin_cannot_invite_someone_who_is_also_elsewhere(
    project, other_project, lead, admin_user
):
    pending = people.member_invite(project=other_project, username="pat")
    Membership.objects.create(project=project, user=pending)
    with pytest.raises(ValidationError, match="projects you do not manage"):
        people.invitation_make(user=pending, by=lead)
    assert people.invitation_make(user=pending, by=admin_user)  # staff may


def test_staff_accounts_without_a_password_are_never_invited(project, lead, admin_user):
    root = User.objects.create_superuser("root", password=None)
    Membership.objects.create(project=project, user=root)
    with pytest.raises(ValidationError, match="cannot be invited"):
        people.invitation_make(user=root, by=admin_user)
    token = default_token_generator.make_token(root)
    assert selectors_people.invited_user(_uidb64(root), token) is None


def test_a_pending_member_gets_a_new_link_from_the_page(lead_client, project):
    mia = people.member_invite(project=project, username="mia")
    response = lead_client.post(reverse("member_invitation", args=[project.pk, mia.pk]),
                                follow=True)
    uidb64, token = _invitation_url(response).partition("#")[2].split("/")
    assert selectors_people.invited_user(uidb64, token) == mia


# --- roles and removal --------------------------------------------------------------------


def test_a_project_admin_promotes_and_demotes_members(lead_client, project, labeler):
    url = reverse("member_role", args=[project.pk, labeler.pk])
    lead_client.post(url, {"role": "admin"})
    assert Membership.objects.get(user=labeler).role == Membership.Role.ADMIN
    lead_client.post(url, {"role": "labeler"})
    assert Membership.objects.get(user=labeler).role == Membership.Role.LABELER
    assert lead_client.post(url, {"role": "owner"}).status_code == 302
    assert Membership.objects.get(user=labeler).role == Membership.Role.LABELER


def test_the_last_project_admin_cannot_step_down_or_leave(lead_client, project, lead):
    response = lead_client.post(reverse("member_role", args=[project.pk, lead.pk]),
                                {"role": "labeler"}, follow=True)
    assert "only admin" in response.content.decode()
    lead_client.post(reverse("member_remove", args=[project.pk, lead.pk]))
    assert Membership.objects.get(user=lead).role == Membership.Role.ADMIN


def test_an_admin_steps_down_when_another_admin_remains(lead_client, project, lead, labeler):
    Membership.objects.filter(user=labeler).update(role=Membership.Role.ADMIN)
    response = lead_client.post(reverse("member_role", args=[project.pk, lead.pk]),
                                {"role": "labeler"})
    assert response["Location"] == reverse("project_list")  # the people page is no longer theirs
    assert Membership.objects.get(user=lead).role == Membership.Role.LABELER


def test_staff_may_demote_or_remove_the_last_project_admin(admin_client, project, lead):
    admin_client.post(reverse("member_role", args=[project.pk, lead.pk]), {"role": "labeler"})
    assert Membership.objects.get(user=lead).role == Membership.Role.LABELER
    admin_client.post(reverse("member_role", args=[project.pk, lead.pk]), {"role": "admin"})
    admin_client.post(reverse("member_remove", args=[project.pk, lead.pk]))
    assert not Membership.objects.filter(user=lead).exists()


def test_removing_a_member_releases_their_leases_and_keeps_their_labels(
    lead_client, project, other_project, labeler
):
    make_items(project, 3)
    make_items(other_project, 1)
    Membership.objects.create(project=other_project, user=labeler)
    labeled = item_next_claim(labeler=labeler, project=project)
    label_as(labeler, labeled, "positive")
    held = item_next_claim(labeler=labeler, project=project)
    held_elsewhere = item_next_claim(labeler=labeler, project=other_project)

    lead_client.post(reverse("member_remove", args=[project.pk, labeler.pk]))

    assert not Membership.objects.filter(project=project, user=labeler).exists()
    held.refresh_from_db()
    assert held.leased_to is None and held.lease_expires_at is None
    held_elsewhere.refresh_from_db()
    assert held_elsewhere.leased_to == labeler  # another project's lease is not this team's
    assert Annotation.objects.filter(labeler=labeler, item=labeled).exists()
    assert not Item.objects.filter(project=project, leased_to=labeler).exists()


# --- progress and agreement ---------------------------------------------------------------


def test_members_show_labels_today_in_total_last_label_and_agreement(
    lead_client, project, labeler, lead
):
    items = make_items(project, 4, required_labels=2)
    for item, (a, b) in zip(items, [("positive", "positive"), ("negative", "negative"),
                                    ("positive", "neutral")], strict=False):
        label_as(labeler, item, a)
        label_as(lead, item, b)
    label_as(labeler, items[3], "neutral")
    two_days_ago = timezone.now() - timedelta(days=2)
    Annotation.objects.filter(labeler=labeler, item=items[0]).update(created_at=two_days_ago)

    rows = {row["user"].username: row for row in selectors_people.project_members(project)}
    lena, tess = rows["lena"], rows["tess"]
    assert (lena["today"], lena["total"]) == (3, 4)
    assert (tess["today"], tess["total"]) == (3, 3)
    assert lena["membership"].role == "labeler" and tess["membership"].role == "admin"
    newest = Annotation.objects.filter(labeler=labeler).latest("created_at")
    assert lena["last"] == newest.created_at
    assert lena["agreement"]["compared"] == 3
    assert lena["agreement"]["share"] == pytest.approx(2 / 3)

    html = lead_client.get(reverse("people", args=[project.pk])).content.decode()
    assert "67%" in html and "of 3 label pairs" in html


def test_a_member_without_labels_shows_dashes(lead_client, project, labeler):
    row = next(r for r in selectors_people.project_members(project) if r["user"] == labeler)
    assert (row["today"], row["total"], row["last"], row["agreement"]) == (0, 0, None, None)
    assert lead_client.get(reverse("people", args=[project.pk])).status_code == 200

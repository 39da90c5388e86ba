"""The project pages in the app: who may open them, creating a project, its settings, its
label set as a list of rows, archiving, and the guidelines on the labeling page."""

import pytest
from django.urls import reverse

from annotator.models import Annotation, Item, Project
from tests.annotator.labeling_factories import label_as, make_item, make_items

pytestmark = pytest.mark.django_db


def _settings(**changes) -> dict:
    data = {
        "name": "Shoes", "description": "", "text_kind": "review", "overlap_percent": 0,
        "overlap_labelers": 2, "model_name": "", "retrain_min_new_labels": 50,
        "retrain_every_minutes": 60, "epochs": 3, "guidelines": "",
        "strategy": "margin", "fast_loop_every": 20, "cold_start_diversity": "on",
        "class_sample_share": 0.5,
    }
    return {**data, **changes}


def _label_rows(rows, *, extra=1) -> dict:
    """POST data of the label rows: (original, name, key, color, position, delete)."""
    data = {"labels-TOTAL_FORMS": len(rows) + extra, "labels-INITIAL_FORMS": len(rows),
            "labels-MIN_NUM_FORMS": 0, "labels-MAX_NUM_FORMS": 20}
    for i, (original, name, key, color, position, delete) in enumerate(rows):
        data.update({f"labels-{i}-original": original, f"labels-{i}-name": name,
                     f"labels-{i}-key": key, f"labels-{i}-color": color,
                     f"labels-{i}-position": position})
        if delete:
            data[f"labels-{i}-delete"] = "on"
    return data


def _rows_of(project) -> list[list]:
    return [[label["name"], label["name"], label["key"], label["color"], i + 1, False]
            for i, label in enumerate(project.label_set)]


def _manage_pages(project):
    return [("get", reverse("project_settings", args=[project.pk])),
            ("post", reverse("project_settings", args=[project.pk])),
            ("get", reverse("project_labels", args=[project.pk])),
            ("post", reverse("project_labels", args=[project.pk])),
            ("post", reverse("project_archive", args=[project.pk]))]


# --- who may open what -------------------------------------------------------------------


def test_anonymous_users_are_sent_to_login(client, project):
    for method, url in [*_manage_pages(project), ("get", reverse("project_new"))]:
        response = getattr(client, method)(url)
        assert response.status_code == 302 and reverse("login") in response["Location"], url


def test_labelers_and_another_projects_admin_get_403(client, project, labeler, other_lead):
    for user in (labeler, other_lead):
        client.force_login(user)
        for method, url in _manage_pages(project):
            assert getattr(client, method)(url).status_code == 403, (user, url)
    assert Project.objects.get(pk=project.pk).archived_at is None


def test_the_projects_admin_and_staff_may_open_settings_and_labels(client, project, lead,
                                                                   admin_user):
    for user in (lead, admin_user):
        client.force_login(user)
        assert client.get(reverse("project_settings", args=[project.pk])).status_code == 200
        assert client.get(reverse("project_labels", args=[project.pk])).status_code == 200


def test_only_staff_create_projects(client, lead, labeler):
    for user in (lead, labeler):
        client.force_login(user)
        assert client.get(reverse("project_new")).status_code == 403
        assert client.post(reverse("project_new"), _settings(name="X")).status_code == 403
    assert not Project.objects.filter(name="X").exists()


def test_the_project_list_offers_new_project_and_settings_to_managers(client, project, lead,
                                                                      labeler, admin_user):
    settings_url = reverse("project_settings", args=[project.pk])
    client.force_login(labeler)
    page = client.get(reverse("project_list")).content.decode()
    assert settings_url not in page and reverse("project_new") not in page
    client.force_login(lead)
    page = client.get(reverse("project_list")).content.decode()
    assert settings_url in page and reverse("project_new") not in page
    client.force_login(admin_user)
    page = client.get(reverse("project_list")).content.decode()
    assert settings_url in page and reverse("project_new") in page


# --- create and edit -----------------------------------------------------------------------


def test_staff_create_a_project_with_its_labels(admin_client):
    rows = [["", "好评", "", "#00aa00", 2, False], ["", "差评", "x", "#aa0000", 1, False]]
    data = {**_settings(name="Phones CN", guidelines="Be *kind*"), **_label_rows(rows, extra=2)}
    response = admin_client.post(reverse("project_new"), data)
    project = Project.objects.get(name="Phones CN")
    assert response.status_code == 302
    assert response["Location"] == reverse("project_settings", args=[project.pk])
    assert project.labels == [{"name": "差评", "key": "x", "color": "#aa0000"},
                              {"name": "好评", "key": "1", "color": "#00aa00"}]
    assert project.guidelines == "Be *kind*"


def test_the_new_project_page_starts_with_the_default_labels(admin_client):
    page = admin_client.get(reverse("project_new")).content.decode()
    for name in ("negative", "neutral", "positive"):
        assert f'value="{name}"' in page


def test_every_settings_field_is_on_the_page(admin_client):
    """A field the form requires but the template leaves out makes every save fail."""
    from annotator.forms.projects import SETTINGS_FIELDS

    page = admin_client.get(reverse("project_new")).content.decode()
    for field in SETTINGS_FIELDS:
        assert f'name="{field}"' in page, field


def test_a_bad_label_set_creates_nothing_and_says_why(admin_client):
    rows = [["", "joy", "s", "#00aa00", 1, False], ["", "anger", "", "#aa0000", 2, False]]
    response = admin_client.post(reverse("project_new"),
                                 {**_settings(name="Bad"), **_label_rows(rows)})
    assert response.status_code == 200
    assert "taken by the labeling page" in response.content.decode()
    assert not Project.objects.filter(name="Bad").exists()


def test_the_projects_admin_changes_settings(client, project, lead):
    make_items(project, 10)
    client.force_login(lead)
    url = reverse("project_settings", args=[project.pk])
    response = client.post(url, _settings(epochs=5, overlap_percent=50, show_suggestions="on",
                                          class_sample_share=0.25), follow=True)
    project.refresh_from_db()
    assert (project.epochs, project.overlap_percent, project.show_suggestions) == (5, 50, True)
    assert project.class_sample_share == 0.25
    assert Item.objects.filter(project=project, required_labels=2).count() == 5
    assert "5 pool items now go to 2 labelers" in response.content.decode()


def test_out_of_range_settings_are_refused(admin_client, project):
    url = reverse("project_settings", args=[project.pk])
    response = admin_client.post(url, _settings(overlap_percent=150, epochs=0,
                                                class_sample_share=1.5))
    assert response.status_code == 200
    project.refresh_from_db()
    assert (project.overlap_percent, project.epochs, project.class_sample_share) == (0, 3, 0.5)


def test_the_model_field_suggests_built_in_models(admin_client, project):
    page = admin_client.get(reverse("project_settings", args=[project.pk])).content.decode()
    assert 'list="model-name-choices"' in page and '<option value="all-MiniLM-L6-v2">' in page


def test_settings_of_a_project_with_an_old_invalid_label_set_say_so(admin_client, project):
    Project.objects.filter(pk=project.pk).update(labels=["joy", "anger"])
    response = admin_client.post(reverse("project_settings", args=[project.pk]), _settings())
    assert response.status_code == 200
    assert "Label set: Label 1 must be an object" in response.content.decode()


# --- the label set ---------------------------------------------------------------------------


def test_renaming_on_the_labels_page_keeps_the_annotations(client, project, lead, labeler):
    label_as(labeler, make_item(project, "great"), "positive")
    client.force_login(lead)
    rows = _rows_of(project)
    rows[2][1] = "good"
    response = client.post(reverse("project_labels", args=[project.pk]), _label_rows(rows))
    assert response.status_code == 302
    assert Annotation.objects.get().label == "good"
    assert Project.objects.get(pk=project.pk).label_names == ["negative", "neutral", "good"]


def test_deleting_a_label_in_use_is_refused_on_the_page(admin_client, project, labeler):
    label_as(labeler, make_item(project, "great"), "positive")
    rows = _rows_of(project)
    rows[2][5] = True
    response = admin_client.post(reverse("project_labels", args=[project.pk]), _label_rows(rows))
    assert response.status_code == 200
    assert "&#x27;positive&#x27; cannot be deleted" in response.content.decode()
    assert Project.objects.get(pk=project.pk).label_names == ["negative", "neutral", "positive"]


def test_the_labels_page_adds_deletes_and_reorders(admin_client, project):
    rows = _rows_of(project)
    rows[1][5] = True  # neutral goes
    rows[0][4], rows[2][4] = 3, 1  # positive first
    data = _label_rows(rows, extra=1)
    data.update({"labels-3-name": "mixed", "labels-3-key": "", "labels-3-color": "#123456"})
    response = admin_client.post(reverse("project_labels", args=[project.pk]), data)
    assert response.status_code == 302
    assert Project.objects.get(pk=project.pk).labels == [
        {"name": "positive", "key": "3", "color": "#2ca02c"},
        {"name": "negative", "key": "1", "color": "#d62728"},
        {"name": "mixed", "key": "2", "color": "#123456"},
    ]


def test_the_labels_page_shows_what_uses_each_label(admin_client, project, labeler):
    label_as(labeler, make_item(project, "great"), "positive")
    page = admin_client.get(reverse("project_labels", args=[project.pk])).content.decode()
    assert "annotations: 1" in page


def test_an_old_list_of_strings_is_shown_as_rows_and_saved_as_labels(admin_client, project):
    Project.objects.filter(pk=project.pk).update(labels=["joy", "anger"])
    project.refresh_from_db()
    url = reverse("project_labels", args=[project.pk])
    assert 'value="joy"' in admin_client.get(url).content.decode()
    assert admin_client.post(url, _label_rows(_rows_of(project))).status_code == 302
    assert Project.objects.get(pk=project.pk).labels[0] == {"name": "joy", "key": "1",
                                                            "color": "#1f77b4"}


# --- archive -------------------------------------------------------------------------------


@pytest.fixture
def archived(client, project, lead):
    client.force_login(lead)
    client.post(reverse("project_archive", args=[project.pk]), {"archived": "1"}, follow=True)
    project.refresh_from_db()
    return project


def test_an_archived_project_leaves_the_labelers_list(client, archived, labeler):
    assert archived.archived_at is not None
    client.force_login(labeler)
    assert archived.name not in client.get(reverse("project_list")).content.decode()


def test_the_archived_projects_labeling_page_says_so(client, archived, labeler):
    client.force_login(labeler)
    response = client.get(reverse("label_page", args=[archived.pk]))
    assert response.status_code == 410
    assert "is archived" in response.content.decode()


def test_an_archived_project_takes_no_labels(client, project, labeler, lead):
    item = make_item(project, "great")
    client.force_login(labeler)
    assert client.get(reverse("label_next", args=[project.pk])).json()["item"]["id"] == item.pk
    Project.objects.filter(pk=project.pk).update(archived_at="2026-01-01T00:00:00Z")
    next_ = client.get(reverse("label_next", args=[project.pk])).json()
    assert next_["item"] is None and "archived" in next_["notice"]
    response = client.post(reverse("label_submit", args=[project.pk]),
                           {"item": item.pk, "label": "positive"})
    assert response.status_code == 403 and "archived" in response.json()["error"]
    assert not Annotation.objects.exists()


def test_its_admin_still_sees_it_and_opens_it_again(client, archived, lead):
    page = client.get(reverse("project_list")).content.decode()
    assert archived.name in page and "archived" in page
    client.post(reverse("project_archive", args=[archived.pk]), {"archived": "0"})
    archived.refresh_from_db()
    assert archived.archived_at is None


# --- guidelines ------------------------------------------------------------------------------

UNSAFE = ('## Rules\n\n**Sarcasm** is negative.\n\n<script>alert("x")</script>\n\n'
          '<img src=x onerror="alert(1)">\n\n[docs](javascript:alert(1))')


def test_guidelines_are_shown_sanitized_on_the_labeling_page(labeler_client, project):
    Project.objects.filter(pk=project.pk).update(guidelines=UNSAFE)
    page = labeler_client.get(reverse("label_page", args=[project.pk])).content.decode()
    assert "<h2>Rules</h2>" in page and "<strong>Sarcasm</strong> is negative." in page
    assert 'alert("x")' not in page and "onerror" not in page and "javascript:" not in page


def test_the_settings_page_previews_guidelines_without_saving(admin_client, project):
    url = reverse("project_settings", args=[project.pk])
    response = admin_client.post(url, _settings(guidelines=UNSAFE, preview="1"))
    preview = response.content.decode().split('<div class="guidelines">')[1].split("</div>")[0]
    assert "<strong>Sarcasm</strong>" in preview and "onerror" not in preview
    project.refresh_from_db()
    assert project.guidelines == ""

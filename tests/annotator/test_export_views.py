"""The streamed export endpoint and the admin action."""

import csv
import io
import json
import re

import pytest
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone

from annotator.lib.cleaning import content_hash
from annotator.models import Annotation, Item
from annotator.services.exporting import COLUMNS


@pytest.fixture
def items(project, labeler):
    made = []
    for text, label in [("Great", "positive"), ("Awful", "negative"), ("Unseen", None)]:
        item = Item.objects.create(
            project=project, raw_text=text, text=text, content_hash=content_hash(text)
        )
        if label:
            Annotation.objects.create(item=item, labeler=labeler, label=label)
        made.append(item)
    return made


def export_url(project, **params):
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return reverse("export_download", args=[project.pk]) + (f"?{query}" if query else "")


def body(response) -> str:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content).decode()


def test_anonymous_users_are_sent_to_the_login_page(client, project):
    response = client.get(export_url(project))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("who", ["labeler_client", "outsider_client"])
def test_non_staff_users_get_403(request, who, project, items):
    assert request.getfixturevalue(who).get(export_url(project)).status_code == 403


def test_admin_streams_jsonl_by_default(admin_client, project, items):
    response = admin_client.get(export_url(project))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    today = timezone.localdate().isoformat()
    assert response["Content-Disposition"] == f'attachment; filename="shoes-all-{today}.jsonl"'
    rows = [json.loads(line) for line in body(response).splitlines()]
    assert [(row["text"], row["label"]) for row in rows] == [
        ("Great", "positive"),
        ("Awful", "negative"),
        ("Unseen", ""),
    ]


def test_admin_streams_labeled_csv_with_filters(admin_client, project, items, labeler):
    response = admin_client.get(
        export_url(
            project,
            format="csv",
            labeled_only=1,
            labeler="lena",
            since="2000-01-01",
            until="2999-01-01",
        )
    )
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(body(response))))
    assert list(rows[0]) == COLUMNS
    assert [(row["text"], row["label"], row["labelers"]) for row in rows] == [
        ("Great", "positive", "lena"),
        ("Awful", "negative", "lena"),
    ]


def test_the_excel_download_starts_with_a_bom(admin_client, project, items):
    with_bom = body(admin_client.get(export_url(project, format="csv", bom=1)))
    assert with_bom.startswith("\ufeffitem_id,")
    assert body(admin_client.get(export_url(project, format="csv"))).startswith("item_id,")


def test_gold_only_filter(admin_client, project, items):
    Item.objects.filter(pk=items[2].pk).update(split="gold")
    rows = body(admin_client.get(export_url(project, gold_only=1))).splitlines()
    assert [json.loads(row)["text"] for row in rows] == ["Unseen"]


@pytest.mark.parametrize(
    "params, message",
    [
        ({"format": "xlsx"}, "format must be csv or jsonl"),
        ({"labeler": "nobody"}, "no such labeler"),
        ({"since": "yesterday"}, "not a date or datetime: 'yesterday' (use YYYY-MM-DD)"),
    ],
)
def test_bad_parameters_get_400(admin_client, project, params, message):
    response = admin_client.get(export_url(project, **params))
    assert (response.status_code, response.content.decode()) == (400, message)


def test_each_download_of_the_import_page_has_its_own_file_name(admin_client, project, items):
    page = admin_client.get(reverse("import_upload", args=[project.pk])).content.decode()
    links = [href.replace("&amp;", "&") for href in
             re.findall(r'href="([^"]*/export\?[^"]*)"', page)]
    assert len(links) >= 3
    names = {admin_client.get(link)["Content-Disposition"] for link in links}
    assert len(names) == len(links)
    today = timezone.localdate().isoformat()
    assert f'filename="shoes-labeled-{today}.jsonl"' in " ".join(names)
    assert f'filename="shoes-all-{today}.jsonl"' in " ".join(names)


def test_a_project_name_without_latin_letters_still_names_the_file(admin_client, project, items):
    project.name = "鞋子"
    project.save()
    response = admin_client.get(export_url(project, labeled_only=1, gold_only=1))
    today = timezone.localdate().isoformat()
    assert response["Content-Disposition"] == (
        f'attachment; filename="project{project.pk}-labeled-gold-{today}.jsonl"')


def test_the_admin_action_exports_labeled_items_as_csv(admin_client, project, items):
    response = admin_client.post(
        reverse("admin:annotator_project_changelist"),
        {
            "action": "export_labeled_csv",
            "_selected_action": [project.pk],
        },
    )
    assert response["Content-Disposition"] == 'attachment; filename="shoes-labeled.csv"'
    rows = list(csv.DictReader(io.StringIO(body(response))))
    assert [row["text"] for row in rows] == ["Great", "Awful"]


def test_the_admin_action_writes_a_csv_excel_opens_safely(admin_client, project, labeler):
    for text in ["=HYPERLINK(\"http://evil.example\")", "鞋子很舒服"]:
        item = Item.objects.create(project=project, raw_text=text, text=text,
                                   content_hash=content_hash(text))
        Annotation.objects.create(item=item, labeler=labeler, label="positive")
    response = admin_client.post(
        reverse("admin:annotator_project_changelist"),
        {"action": "export_labeled_csv", "_selected_action": [project.pk]},
    )
    content = body(response)
    assert content.startswith("\ufeffitem_id,")  # without it Excel shows Chinese as mojibake
    rows = list(csv.DictReader(io.StringIO(content.removeprefix("\ufeff"))))
    assert [row["text"] for row in rows] == ["'=HYPERLINK(\"http://evil.example\")", "鞋子很舒服"]


def test_the_admin_action_wants_exactly_one_project(admin_client, project, other_project):
    response = admin_client.post(
        reverse("admin:annotator_project_changelist"),
        {
            "action": "export_labeled_csv",
            "_selected_action": [project.pk, other_project.pk],
        },
        follow=True,
    )
    assert "Select exactly one project to export." in response.content.decode()

"""Headless Chromium on real workers: the first afternoon of issue 23, replayed.

Two projects and one prefork `celery worker` on every queue, as `bin/up` and the containers
run them. The lead imports a file of 5,000 reviews into project B; meanwhile in project A a
labeler labels with the keyboard, the lead retrains, the version is activated and served,
the label review lists the labels planted wrong; then a version trained on labels gone
wrong is refused, with its reason on the Models page, and the API keeps serving the good
one. Every page the browser opened answered below 400, and no background task failed.
"""

import csv
import json
import random
import urllib.request

import pytest
from django.contrib.auth import get_user_model

from annotator.models import (
    Annotation,
    BackgroundFailure,
    ImportJob,
    Item,
    LabelFlag,
    Membership,
    ModelVersion,
    Project,
    TrainingRun,
)
from annotator.services.tokens import api_token_create
from tests.annotator.test_real_workers import (
    NEGATIVE,
    PLANTED,
    POSITIVE,
    _item,
    _queues,
    _start_worker,
    _stop,
    _wait_for,
    purged_broker,
)
from tests.browser.conftest import ARTIFACTS, closes_its_db_connection, needs_chromium
from tests.browser.test_team_lead_flow import _log_in
from tests.conftest import PASSWORD

pytestmark = [*needs_chromium, pytest.mark.slow]

__all__ = ["purged_broker"]  # the fixture, imported to be used here

IMPORT_ROWS = 5_000
WORDS = ("great bad fine sole size colour delivery refund comfy cheap broke love arrived late "
         "box seller fits small large returned quality price soft zipper seams 质量 很好 物流 太慢").split()


def _setup():
    user_model = get_user_model()
    lead = user_model.objects.create_user("lead", password=PASSWORD, is_staff=True)
    lena = user_model.objects.create_user("lena", password=PASSWORD)
    dresses, shoes = Project.objects.create(name="Dresses"), Project.objects.create(name="Shoes")
    for project in (dresses, shoes):
        Membership.objects.create(project=project, user=lead, role=Membership.Role.ADMIN)
    Membership.objects.create(project=dresses, user=lena)
    for n, text in enumerate(POSITIVE + NEGATIVE):
        label = PLANTED.get(text, "positive" if text in POSITIVE else "negative")
        item = _item(dresses, text, annotation_count=1, random_key=n / 100)
        Annotation.objects.create(item=item, labeler=lena, label=label)
        for said in (f"honestly, {text}", f"{text}, really"):  # gold: the same said another way
            _item(dresses, said, split=Item.Split.GOLD,
                  gold_label="positive" if text in POSITIVE else "negative")
    for n, text in enumerate(["fits well and soft", "it tore, awful", "nice colour, happy",
                              "bad zipper, sent back", "很好看", "太差了", "comfy and warm",
                              "the hem came loose"]):
        _item(dresses, text, random_key=0.5 + n / 100)
    return lead, dresses, shoes


def _big_file(path):
    rng = random.Random(7)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["review"])
        for n in range(IMPORT_ROWS):
            writer.writerow([f"{' '.join(rng.choices(WORDS, k=12))} #{n}"])


def _predict(base: str, project: Project, key: str, text: str) -> dict:
    request = urllib.request.Request(
        f"{base}/api/projects/{project.pk}/predict", data=json.dumps({"texts": [text]}).encode(),
        headers={"Authorization": f"Token {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)


def _goto(page, url: str) -> None:
    """page.goto, again if the page's own reload cut it short (the models page reloads itself
    when a run it watches ends: training.js)."""
    from playwright.sync_api import Error

    try:
        page.goto(url)
    except Error as exc:
        if "interrupted by another navigation" not in str(exc):
            raise
        page.wait_for_load_state()
        page.goto(url)


def _retrain(page, base: str, project: Project) -> None:
    _goto(page, f"{base}/projects/{project.pk}/models/")
    with page.expect_navigation():
        page.click("button:has-text('Retrain now')")


@pytest.mark.django_db(transaction=True)
@closes_its_db_connection
def test_an_afternoon_of_two_projects_on_real_workers(live_server, browser_page, purged_broker,
                                                      monkeypatch, tmp_path):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM calls beside Playwright
    lead, dresses, shoes = _setup()
    log = tmp_path / "worker.log"
    worker = _start_worker(_queues(), log)
    page, base = browser_page, live_server.url
    answers = []
    page.on("response", lambda response: answers.append((response.status, response.url)))
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        # 1. the lead imports 5,000 reviews into Shoes; the worker takes it from here
        upload = tmp_path / "shoes.csv"
        _big_file(upload)
        _log_in(page, base, "lead", PASSWORD)
        page.goto(f"{base}/projects/{shoes.pk}/import/")
        page.set_input_files("input[name=file]", str(upload))
        page.click("button:has-text('Upload and preview')")
        page.wait_for_selector("button:has-text('Import')")
        with page.expect_navigation():
            page.click("button:has-text('Import')")
        job = ImportJob.objects.get(project=shoes)

        # 2. meanwhile in Dresses: the lead retrains, the labeler labels with the keyboard
        _retrain(page, base, dresses)
        page.context.clear_cookies()
        _log_in(page, base, "lena", PASSWORD, f"/projects/{dresses.pk}/label/")
        page.wait_for_selector("#item-body .text")
        before = int(page.inner_text("#mine-today"))  # the labels set up above count too
        for done, key in enumerate(["1", "2", "1"], start=before + 1):
            page.keyboard.press(key)
            page.wait_for_function(
                f"() => document.getElementById('mine-today').textContent === '{done}'")
        assert Annotation.objects.filter(item__project=dresses).count() == len(POSITIVE + NEGATIVE) + 3

        _wait_for("Dresses v1 is active", lambda: ModelVersion.objects.filter(
            project=dresses, is_active=True).exists(), log)
        _wait_for("Shoes' import finished", lambda: ImportJob.objects.get(pk=job.pk).status in (
            ImportJob.Status.SUCCEEDED, ImportJob.Status.FAILED), log)
        job.refresh_from_db()
        assert job.status == ImportJob.Status.SUCCEEDED, job.error
        assert Item.objects.filter(project=shoes).count() == IMPORT_ROWS

        # 3. the version is served, and the label review lists the planted labels
        key = api_token_create(user=lead, replace=True)
        assert _predict(base, dresses, key, "love it, fits great")["model_version"] == 1
        v1 = ModelVersion.objects.get(project=dresses, is_active=True)
        _wait_for("the label review checked v1", lambda: LabelFlag.objects.filter(
            model_version=v1).exists(), log)
        page.context.clear_cookies()
        _log_in(page, base, "lead", PASSWORD, f"/projects/{dresses.pk}/label-review/")
        review = page.inner_text("main")
        assert any(text in review for text in PLANTED), review

        # 4. labels gone wrong (positive and negative swapped): the version is not activated
        for annotation in Annotation.objects.filter(item__project=dresses):
            annotation.label = {"positive": "negative", "negative": "positive"}.get(
                annotation.label, annotation.label)
            annotation.save()
        _retrain(page, base, dresses)
        _wait_for("Dresses v2 trained", lambda: TrainingRun.objects.filter(
            project=dresses, status=TrainingRun.Status.SUCCEEDED).count() == 2, log)
        v2 = ModelVersion.objects.get(project=dresses, version=2)
        assert not v2.is_active and v2.activation["reason"].startswith("not activated"), v2.activation
        _goto(page, f"{base}/projects/{dresses.pk}/models/")
        models_page = page.inner_text("main")
        assert "(not activated)" in models_page and "Activate anyway" in models_page
        assert v2.activation["reason"] in models_page
        page.screenshot(path=str(ARTIFACTS / "afternoon_models.png"), full_page=True)
        assert _predict(base, dresses, key, "love it, fits great")["model_version"] == 1

        # 5. every page of both projects answers
        for project in (dresses, shoes):
            for path in ("dashboard/", "analytics/", "models/", "label-review/", "agreement/",
                         "import/", "people/", "settings/", "labels/", "label/", "my-labels/"):
                _goto(page, f"{base}/projects/{project.pk}/{path}")
        _goto(page, f"{base}/")
    finally:
        _stop(worker)

    failed = [(status, url) for status, url in answers if status >= 400]
    assert failed == [], failed
    assert list(BackgroundFailure.objects.values_list("text", flat=True)) == []
    text = log.read_text()
    for failure in ("raised unexpected", "Traceback", "WorkerLostError"):
        assert failure not in text, text[-6000:]

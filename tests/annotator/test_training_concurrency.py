"""Two triggers at once (button, API, beat) -> one training run."""

import threading
from unittest import mock

import pytest
from django.db import connection

from annotator.models import TrainingRun
from annotator.services.training import training_request
from tests.annotator.training_helpers import add_labeled_items


def test_sequential_triggers_share_the_queued_run(project, labeler):
    add_labeled_items(project, labeler)
    with mock.patch("annotator.tasks.train_project_task.delay"):
        runs = {training_request(project=project, trigger=t).id for t in ("manual", "api")}
    assert len(runs) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_triggers_create_one_training_run(project, labeler):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL to a postgres:// URL)")
    add_labeled_items(project, labeler)
    barrier, results, errors = threading.Barrier(8), [], []

    def trigger(kind):
        try:
            barrier.wait()
            run = training_request(project=project, trigger=kind)
            results.append(run.id)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    with mock.patch("annotator.tasks.train_project_task.delay") as delay:
        threads = [threading.Thread(target=trigger, args=(["manual", "api", "schedule"][i % 3],))
                   for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    run = TrainingRun.objects.get()
    assert results == [run.id] * 8
    assert delay.call_count == 1

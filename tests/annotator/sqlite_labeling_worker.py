"""One labeler in its own OS process, for the SQLite concurrency test.

Sets up Django against the given SQLite file (so the settings' WAL, IMMEDIATE and busy
timeout options apply, as under `bin/up`), waits for the other processes, then for
`seconds` takes the next item (which leases it), now and then reloads or skips it, submits
a label (now and then twice) and writes what it saw to `out_path` as JSON.

Run in a spawned process (multiprocessing); imports Django models only after setup.
"""

import json
import os
import random
import time
import traceback


def run(
    *, sqlite_path: str, labeler_id: int, project_id: int, seconds: float, start, out_path: str
) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{sqlite_path}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import OperationalError, connection

    from annotator.models import Project
    from annotator.selectors.queue import queue_for
    from annotator.services.labeling import (
        ItemAlreadyComplete,
        annotation_submit,
        item_next_claim,
        item_skip,
    )

    rng = random.Random(labeler_id)
    seen = {
        "labeler_id": labeler_id,
        "journal_mode": None,
        "submitted": [],  # item ids this labeler's annotation was created for
        "holds": [],  # [item id, got lease at, gave it back no earlier than] (monotonic ns)
        "reloads_moved": [],  # a reload handed out another item than the one held
        "double_submit_created": [],  # a second submit that created a row
        "already_complete": [],  # ItemAlreadyComplete while holding the lease
        "errors": [],
    }
    skipped: set[int] = set()

    def record_error(exc: BaseException) -> None:
        seen["errors"].append(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")

    try:
        user = get_user_model().objects.get(pk=labeler_id)
        project = Project.objects.get(pk=project_id)
        labels = project.label_names
        with connection.cursor() as cursor:
            seen["journal_mode"] = cursor.execute("PRAGMA journal_mode").fetchone()[0]
        start.wait(timeout=60)  # every process is set up: now they all label at once
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(seen["errors"]) < 5:
            try:
                item = item_next_claim(labeler=user, project=project, exclude_ids=skipped)
                got = time.monotonic_ns()
                if item is None:
                    if not queue_for(user, project, exclude_ids=skipped).exists():
                        break  # nothing left for me
                    time.sleep(0.005)  # what is left is held by others for now
                    continue
                if rng.random() < 0.1:  # a page reload gives back the same item
                    again = item_next_claim(labeler=user, project=project, exclude_ids=skipped)
                    if again is None or again.pk != item.pk:
                        seen["reloads_moved"].append([item.pk, again and again.pk])
                if rng.random() < 0.05:
                    seen["holds"].append([item.pk, got, time.monotonic_ns()])
                    item_skip(labeler=user, item_id=item.pk)
                    skipped.add(item.pk)
                    continue
                label = rng.choice(labels)
                seen["holds"].append([item.pk, got, time.monotonic_ns()])
                try:
                    _, created = annotation_submit(
                        labeler=user, item=item, label=label, seconds_spent=1
                    )
                except ItemAlreadyComplete:
                    seen["already_complete"].append(item.pk)
                    continue
                if created:
                    seen["submitted"].append(item.pk)
                if rng.random() < 0.05:  # a double click
                    _, created_again = annotation_submit(labeler=user, item=item, label=label)
                    if created_again:
                        seen["double_submit_created"].append(item.pk)
            except OperationalError as exc:  # "database is locked" among them
                record_error(exc)
    except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
        record_error(exc)
    finally:
        connection.close()
        with open(out_path, "w") as out:
            json.dump(seen, out)

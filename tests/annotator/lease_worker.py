"""A labeling process for the concurrency test: set up Django against the given
database, then run a few labeler threads that loop item_next_claim + submit.

Run in a spawned process (multiprocessing); imports Django models only after setup.
"""

import os


def run(database_url: str, labeler_ids: list[int], project_id: int) -> list[tuple[int, int]]:
    """Returns the (labeler_id, item_id) pairs this process submitted."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import threading
    import time

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection

    from annotator.models import Project
    from annotator.selectors.queue import queue_for
    from annotator.services.labeling import ItemAlreadyComplete, annotation_submit, item_next_claim

    submitted: list[tuple[int, int]] = []
    lock = threading.Lock()

    def labeler_loop(user_id: int) -> None:
        give_up = time.monotonic() + 120
        user = get_user_model().objects.get(pk=user_id)
        project = Project.objects.get(pk=project_id)
        try:
            while True:
                item = item_next_claim(labeler=user, project=project)
                if item is None:
                    # done, unless an item I may still label is held by someone else
                    # for now (overlap items go to their labelers one at a time)
                    if not queue_for(user, project).exists() or time.monotonic() > give_up:
                        return
                    time.sleep(0.01)
                    continue
                try:
                    annotation_submit(labeler=user, item=item, label="positive", seconds_spent=1)
                except ItemAlreadyComplete:
                    continue
                with lock:
                    submitted.append((user_id, item.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=labeler_loop, args=(uid,)) for uid in labeler_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return submitted

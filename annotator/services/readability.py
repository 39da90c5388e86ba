"""Can the project's model read its texts? Checks after imports and on request.

A model whose vocabulary does not cover the language (the English MiniLM on Chinese) turns
the texts into unknown tokens and trains on nothing while everything reports success. After
each import a worker measures the share of unknown tokens, of texts longer than the
project's max length and of texts that look like mojibake (a file imported with the wrong
encoding; trainer.vocabulary) on a sample of the new texts (shown on the import report) and on
a sample of all the project's texts (shown on the registry page, and what the guard reads):
above settings.UNKNOWN_TOKEN_LIMIT unknown tokens, or above GARBLED_SHARE_LIMIT mojibake
texts, scheduled retraining waits until an admin picks another model or confirms this one
(readability_confirm).
"""

import logging

from django.conf import settings

from annotator.models import ImportJob, Item, Project, VocabularyCheck
from annotator.queueing import enqueue_on_commit

logger = logging.getLogger(__name__)


def _sample_texts(project: Project, job: ImportJob | None, size: int) -> list[tuple[str, str]]:
    """(clean text, text as read from the file) of a sample of the project's items."""
    items = Item.objects.filter(project=project)
    if job is not None:  # the texts this import brought
        items = items.filter(import_job=job)
    return list(items.order_by("random_key", "pk").values_list("text", "raw_text")[:size])


def vocabulary_check_run(*, project_id: int, import_job_id: int | None = None,
                         model_name: str | None = None) -> VocabularyCheck | None:
    """Measure the project's model (or `model_name`) on a sample of its texts; record it.

    Returns None when the project or the import is gone or there is no text to check.
    """
    from trainer.models import describe_source, resolve_model_name
    from trainer.vocabulary import model_coverage

    project = Project.objects.filter(pk=project_id).first()
    job = ImportJob.objects.filter(pk=import_job_id).first() if import_job_id else None
    if project is None or (import_job_id and job is None):
        return None
    sample = _sample_texts(project, job, settings.VOCABULARY_SAMPLE)
    if not sample:
        return None
    texts = [text for text, _ in sample]
    raw_texts = [raw or text for text, raw in sample]
    name = model_name or project.effective_model_name
    max_length = project.max_length_or_cap
    fields = dict(project=project, import_job=job, model_name=name, max_length=max_length)
    try:
        coverage = model_coverage(name, texts, max_length=max_length, raw_texts=raw_texts)
    except Exception as exc:  # a missing or broken model: say so instead of failing silently
        logger.exception("vocabulary check of %s on project %s failed", name, project_id)
        return VocabularyCheck.objects.create(**fields, unreadable=True,
                                              error=f"{type(exc).__name__}: {exc}"[:2000])
    return VocabularyCheck.objects.create(
        **fields, model_source=describe_source(resolve_model_name(name)), texts=coverage.texts,
        unknown_share=coverage.unknown_share, unknown_char_share=coverage.unknown_char_share,
        garbled_share=coverage.garbled_share,
        truncated_share=coverage.truncated_share, examples=coverage.examples,
        unreadable=coverage.unreadable(settings.UNKNOWN_TOKEN_LIMIT),
    )


def vocabulary_check_request(*, project: Project, import_job: ImportJob | None = None) -> None:
    """Have a worker check the project's model on its texts once this transaction commits."""
    job_id = import_job.pk if import_job else None
    enqueue_on_commit("annotator.tasks.vocabulary_check_task", project.pk, job_id)


def readability_confirm(*, project: Project) -> None:
    """An admin accepts the current model although the check says it cannot read the texts:
    scheduled retraining resumes. Choosing another model asks again."""
    Project.objects.filter(pk=project.pk).update(
        readability_confirmed_model=project.effective_model_name)
    project.readability_confirmed_model = project.effective_model_name

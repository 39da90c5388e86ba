"""The readability (vocabulary) check of a project's texts: its latest result, and
whether it holds scheduled training back."""

from annotator.models import Project, VocabularyCheck


def readability_for(project: Project) -> VocabularyCheck | None:
    """The newest check of the project's current model on a sample of all its texts."""
    return VocabularyCheck.objects.filter(project=project, import_job__isnull=True,
                                          model_name=project.effective_model_name).first()


def readability_blocks_schedule(project: Project) -> bool:
    """Scheduled retraining waits: the current model cannot read the project's texts and no
    admin confirmed it."""
    check = readability_for(project)
    return bool(check and check.unreadable
                and project.readability_confirmed_model != project.effective_model_name)

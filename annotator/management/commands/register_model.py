"""Register a model folder or zip copied onto this machine, so projects can train with it."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotator.management.projects import project_named
from annotator.services.encoders import EncoderRejected, encoder_register
from annotator.services.readability import vocabulary_check_run


class Command(BaseCommand):
    help = ("Check that a model folder or zip loads, fits a project's labels and predicts, then "
            "register it under NAME (kept in MODEL_DIR/registered/NAME).")

    def add_arguments(self, parser):
        parser.add_argument("name", help="lowercase name projects will use, e.g. chinese-roberta")
        parser.add_argument("source", type=Path, help="a model folder or a zip of one")
        parser.add_argument("--project", help="check it against this project (id or name): its "
                            "labels, a few of its texts, and how much of them it can read")
        parser.add_argument("--select", action="store_true",
                            help="make it the model of --project")
        parser.add_argument("--description", default="")
        parser.add_argument("--replace", action="store_true",
                            help="replace a model registered under the same name")

    def handle(self, *args, name, source, project, select, description, replace, **options):
        target = None
        if project:
            target = project_named(project)
        elif select:
            raise CommandError("--select needs --project")
        try:
            model = encoder_register(name=name, source=source.resolve(), project=target,
                                     description=description, replace=replace)
        except EncoderRejected as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(
            f"registered {model.name}: {model.model_type}, {model.parameters / 1e6:.1f}M "
            f"parameters, vocabulary {model.vocab_size}, {model.size_bytes / 1e6:.0f} MB"))
        if target is None:
            return
        if select:
            target.model_name = model.name
            target.save(update_fields=["model_name"])
            self.stdout.write(f"project {target.name!r} now trains with {model.name}")
        check = vocabulary_check_run(project_id=target.pk, model_name=model.name)
        if check is None:
            self.stdout.write(f"project {target.name!r} has no texts to check it on yet")
        elif check.unreadable:
            self.stdout.write(self.style.WARNING(
                f"{model.name} reads {check.unknown_share:.1%} of the tokens of {check.texts} "
                f"texts of {target.name!r} as unknown: it cannot read them"))
        else:
            self.stdout.write(f"{model.name} reads the texts of {target.name!r}: "
                              f"{check.unknown_share:.2%} unknown tokens, "
                              f"{check.truncated_share:.1%} texts truncated")

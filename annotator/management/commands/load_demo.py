import json
import tempfile
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from annotator.models import Item, Membership, Project
from annotator.services.demo import demo_rows
from annotator.services.importing import import_file

DEMO_PROJECT = "Demo: shop reviews"


class Command(BaseCommand):
    help = "Create the demo project (invented English and Chinese reviews, with a gold slice)."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=360)

    def handle(self, *args, rows: int, **options):
        project, created = Project.objects.get_or_create(
            name=DEMO_PROJECT,
            defaults={"description": "Invented reviews written by the demo generator."},
        )
        for admin in get_user_model().objects.filter(is_superuser=True):
            Membership.objects.get_or_create(project=project, user=admin)
        if Item.objects.filter(project=project).exists():
            self.stdout.write(f"Demo project '{project.name}' already has items.")
            return

        data = demo_rows(rows)
        with tempfile.TemporaryDirectory() as tmp:
            for split in (Item.Split.POOL, Item.Split.GOLD):
                path = Path(tmp) / f"demo-{split}.jsonl"
                with open(path, "w", encoding="utf-8") as f:
                    for row in data:
                        if row["split"] == split:
                            f.write(json.dumps(row, ensure_ascii=False) + "\n")
                job = import_file(
                    project=project,
                    path=path,
                    id_column="id",
                    meta_columns=["product", "lang"],
                    label_column="label" if split == Item.Split.GOLD else None,
                    split=split,
                )
                self.stdout.write(f"{split}: {job.imported} items imported")
        self.stdout.write(self.style.SUCCESS(f"Demo project '{project.name}' is ready to label."))

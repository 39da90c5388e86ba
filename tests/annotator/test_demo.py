from django.core.management import call_command

from annotator.management.commands.load_demo import DEMO_PROJECT
from annotator.models import Item, Project
from annotator.services.demo import demo_rows


def test_demo_rows_are_unique_bilingual_and_labeled():
    rows = demo_rows(300)
    assert len({row["text"] for row in rows}) == 300
    assert {row["lang"] for row in rows} == {"en", "zh"}
    assert {row["label"] for row in rows} == {"negative", "neutral", "positive"}


def test_load_demo_creates_a_pool_and_a_labeled_gold_slice_once(db, admin_user):
    call_command("load_demo", rows=120)
    call_command("load_demo", rows=120)  # idempotent
    project = Project.objects.get(name=DEMO_PROJECT)
    items = Item.objects.filter(project=project)
    assert items.count() == 120
    gold = items.filter(split=Item.Split.GOLD)
    assert gold.exists() and not gold.filter(gold_label="").exists()
    assert not items.filter(split=Item.Split.POOL).exclude(gold_label="").exists()
    assert project.members.filter(pk=admin_user.pk).exists()

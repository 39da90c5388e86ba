"""Bring your own weights: `manage.py register_model` and choosing a model per project."""

import shutil
import zipfile

import pytest
from django.core.management import CommandError, call_command

from annotator.admin import ProjectForm
from annotator.models import Item, RegisteredModel
from trainer.models import resolve_model_name

pytestmark = pytest.mark.django_db


@pytest.fixture
def model_dir(tmp_path, settings, monkeypatch):
    folder = tmp_path / "models"
    settings.MODEL_DIR = folder
    monkeypatch.setenv("ANNOTATOR_MODEL_DIR", str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A small random BERT with the English MiniLM's tokenizer: what a site copies in."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("copied-in") / "tiny-bert"
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name("all-MiniLM-L6-v2"))
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def zip_of(folder, target, prefix="tiny-bert/", extra: dict | None = None):
    with zipfile.ZipFile(target, "w") as archive:
        for path in folder.iterdir():
            archive.write(path, prefix + path.name)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return target


def test_a_folder_is_checked_copied_and_selectable_by_name(model_dir, tiny_bert, capsys):
    call_command("register_model", "tiny-bert", str(tiny_bert), "--description", "for tests")
    model = RegisteredModel.objects.get(name="tiny-bert")
    assert model.model_type == "bert" and model.vocab_size == 30522 and model.parameters > 0
    assert resolve_model_name("tiny-bert") == str(model_dir / "registered" / "tiny-bert")
    assert (model_dir / "registered" / "tiny-bert" / "config.json").exists()
    assert "registered tiny-bert: bert" in capsys.readouterr().out
    form = ProjectForm(data={"name": "P", "model_name": "tiny-bert"})
    form.is_valid()
    assert "model_name" not in form.errors


def test_a_zip_registers_and_checks_a_projects_labels_and_texts(model_dir, tiny_bert, tmp_path,
                                                                  project, capsys):
    Item.objects.create(project=project, raw_text="质量很好", text="质量很好", content_hash="a")
    archive = zip_of(tiny_bert, tmp_path / "tiny.zip")
    call_command("register_model", "tiny-zip", str(archive), "--project", project.name, "--select")
    project.refresh_from_db()
    assert project.model_name == "tiny-zip"
    out = capsys.readouterr().out
    assert "now trains with tiny-zip" in out
    assert "cannot read them" in out  # an English vocabulary on Chinese text


def test_unsafe_or_broken_archives_and_folders_are_refused_with_nothing_written(
    model_dir, tiny_bert, tmp_path
):
    evil = zip_of(tiny_bert, tmp_path / "evil.zip", extra={"../../escape.txt": "x"})
    with pytest.raises(CommandError, match="unsafe path"):
        call_command("register_model", "evil", str(evil))
    assert not (tmp_path / "escape.txt").exists()

    no_config = tmp_path / "no-config"
    shutil.copytree(tiny_bert, no_config)
    (no_config / "config.json").unlink()
    with pytest.raises(CommandError, match="no config.json"):
        call_command("register_model", "broken", str(no_config))

    mismatched = tmp_path / "mismatched"  # embeddings smaller than the tokenizer's vocabulary
    shutil.copytree(tiny_bert, mismatched)
    config = (mismatched / "config.json").read_text().replace('"vocab_size": 30522',
                                                              '"vocab_size": 100')
    (mismatched / "config.json").write_text(config)
    with pytest.raises(CommandError, match="does not load or predict"):
        call_command("register_model", "mismatched", str(mismatched))

    assert not RegisteredModel.objects.exists()
    assert [p.name for p in (model_dir / "registered").iterdir()] == []


def test_names_must_be_new_unless_replaced_and_never_a_built_in(model_dir, tiny_bert):
    with pytest.raises(CommandError, match="cannot be a model name"):
        call_command("register_model", "multilingual-e5-small", str(tiny_bert))
    with pytest.raises(CommandError, match="cannot be a model name"):
        call_command("register_model", "Bad/Name", str(tiny_bert))
    call_command("register_model", "tiny", str(tiny_bert))
    with pytest.raises(CommandError, match="registered already"):
        call_command("register_model", "tiny", str(tiny_bert))
    call_command("register_model", "tiny", str(tiny_bert), "--replace", "--description", "v2")
    assert RegisteredModel.objects.get().description == "v2"


@pytest.mark.parametrize("name, ok", [
    ("", True), ("multilingual-e5-small", True), ("all-MiniLM-L6-v2", True),
    ("hfl/chinese-roberta-wwm-ext", False),  # the tests run with HF_HUB_OFFLINE=1
    ("not-a-model", False), ("/no/such/folder", False),
])
def test_the_project_form_accepts_only_models_it_can_find(model_dir, name, ok):
    form = ProjectForm(data={"name": "P", "model_name": name})
    form.is_valid()
    assert ("model_name" not in form.errors) is ok, form.errors.get("model_name")


def test_a_hugging_face_id_is_accepted_where_the_hub_is_enabled(model_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    form = ProjectForm(data={"name": "P", "model_name": "hfl/chinese-roberta-wwm-ext"})
    form.is_valid()
    assert "model_name" not in form.errors


def test_a_server_folder_is_refused_by_name_and_the_answer_tells_nothing_of_the_disk(
        model_dir, tiny_bert, project, lead_client):
    """Only the operator brings a folder in (register_model); a project admin cannot point a
    project at the server's disk, and cannot probe which paths exist."""
    answers = []
    for path in (str(tiny_bert), "/no/such/folder"):
        form = ProjectForm(data={"name": "P", "model_name": path})
        assert not form.is_valid()
        answers.append(form.errors["model_name"][0].replace(path, "PATH"))
        response = lead_client.post(f"/projects/{project.pk}/settings/", {
            "name": project.name, "text_kind": "review", "overlap_percent": 0,
            "overlap_labelers": 2, "model_name": path, "retrain_min_new_labels": 50,
            "retrain_every_minutes": 60, "epochs": 3, "strategy": "balanced_ties",
            "fast_loop_every": 20})
        project.refresh_from_db()
        assert project.model_name == ""
        assert "register_model" in response.content.decode()
    assert answers[0] == answers[1]


def test_a_folder_set_from_the_command_line_stays_while_unchanged(model_dir, tiny_bert, project):
    project.model_name = str(tiny_bert)
    project.save()
    form = ProjectForm(instance=project, data={"name": project.name,
                                               "model_name": str(tiny_bert)})
    form.is_valid()
    assert "model_name" not in form.errors


def test_a_folder_with_a_link_out_of_it_is_refused(model_dir, tiny_bert, tmp_path):
    folder = tmp_path / "linked"
    shutil.copytree(tiny_bert, folder)
    secret = tmp_path / "secret.txt"
    secret.write_text("server secrets")
    (folder / "notes.txt").symlink_to(secret)
    with pytest.raises(CommandError, match="symbolic link out of"):
        call_command("register_model", "linked", str(folder))
    assert not RegisteredModel.objects.exists()
    inside = tmp_path / "inside"  # a link to a file of the folder itself is fine
    shutil.copytree(tiny_bert, inside)
    (inside / "alias.json").symlink_to(inside / "config.json")
    call_command("register_model", "inside", str(inside))
    assert (model_dir / "registered" / "inside" / "alias.json").is_file()


def test_a_zip_with_a_symbolic_link_is_refused_clearly(model_dir, tiny_bert, tmp_path):
    archive = zip_of(tiny_bert, tmp_path / "links.zip")
    with zipfile.ZipFile(archive, "a") as zipped:
        link = zipfile.ZipInfo("tiny-bert/vocab-link.txt")
        link.external_attr = (0o120777 << 16)
        zipped.writestr(link, "/etc/passwd")
    with pytest.raises(CommandError, match="is a symbolic link"):
        call_command("register_model", "links", str(archive))
    assert not RegisteredModel.objects.exists()


def test_a_model_registered_on_one_machine_is_copied_to_another_when_used(
    s3_artifacts, model_dir, tiny_bert, tmp_path, monkeypatch
):
    call_command("register_model", "tiny-bert", str(tiny_bert))
    stored = RegisteredModel.objects.get().path
    assert stored.startswith("encoders/tiny-bert/")
    assert s3_artifacts.exists(f"{stored}/config.json")  # what other machines read

    other = tmp_path / "training-machine-models"  # shares no disk with the first machine
    monkeypatch.setenv("ANNOTATOR_MODEL_DIR", str(other))
    assert resolve_model_name("tiny-bert") == str(other / "registered" / "tiny-bert")
    assert (other / "registered" / "tiny-bert" / "config.json").exists()

    monkeypatch.setenv("ANNOTATOR_MODEL_DIR", str(model_dir))
    call_command("register_model", "tiny-bert", str(tiny_bert), "--replace")
    newer = RegisteredModel.objects.get().path
    assert newer != stored and not s3_artifacts.exists(f"{stored}/config.json")
    monkeypatch.setenv("ANNOTATOR_MODEL_DIR", str(other))
    resolve_model_name("tiny-bert")  # the other machine follows the new registration
    assert (other / "registered" / "tiny-bert" / ".stored-as").read_text() == newer

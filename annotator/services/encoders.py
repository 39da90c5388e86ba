"""The encoders a project can fine-tune: built-in, registered by the site, or named freely.

A site without internet copies a model folder (or a zip of it) onto the machine and
registers it: `encoder_register` checks that it loads, builds a classifier for the
project's labels and predicts, stores it in the artifacts storage under
encoders/<name>/<when>/ (what every machine shares) and moves it into
MODEL_DIR/registered/<name>, where trainer.models.resolve_model_name finds it by name. On
another machine `encoder_fetch` (which resolve_model_name calls first) copies the newest
stored registration there.
"""

import os
import re
import shutil
import stat
import tempfile
import uuid
import zipfile
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from annotator.ml.artifacts import (
    artifacts_storage,
    model_version_store,
    stored_folder_download,
    stored_folder_files,
)
from annotator.models import Project, RegisteredModel

HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
SAMPLE_TEXTS = ["Great quality, fast delivery!", "质量很差，不推荐。",
                "衣服还行 but the size runs small"]


class EncoderRejected(Exception):
    """The model cannot be registered (or named); nothing was written."""


def encoder_choices() -> list[tuple[str, str]]:
    """(name, description) of every model a project can pick by name."""
    from trainer.models import BUILTIN_MODELS

    registered = [(m.name, m.description or f"registered from {m.source}")
                  for m in RegisteredModel.objects.all()]
    return list(BUILTIN_MODELS.items()) + registered


def hub_enabled() -> bool:
    """Hugging Face ids work only where the hub may be reached (HF_HUB_OFFLINE unset)."""
    return os.environ.get("HF_HUB_OFFLINE", "") not in ("1", "true", "TRUE", "yes")


def encoder_name_problem(name: str) -> str | None:
    """Why a project cannot be set to train with `name` from the app or the API, or None: a
    built-in or registered name, or a Hugging Face id where the hub is enabled.

    A folder on the server is not a model name here: only the site's operator brings one in,
    from the command line (`manage.py register_model NAME FOLDER`). The answer is the same
    whether such a folder exists or not, so the form tells nothing about the server's disk.
    """
    from trainer.models import BUILTIN_MODELS

    if not name or name in BUILTIN_MODELS or RegisteredModel.objects.filter(name=name).exists():
        return None
    known = ", ".join(n for n, _ in encoder_choices())
    if HUB_ID.match(name):
        if hub_enabled():
            return None
        return (f"{name!r} is a Hugging Face id, but this site does not download models "
                f"(HF_HUB_OFFLINE): use one of {known}, or have the operator register it "
                "with manage.py register_model")
    return (f"unknown model {name!r}: use one of {known}"
            + (", or a Hugging Face id (owner/name)" if hub_enabled() else "")
            + "; a model folder on the server is registered by the operator with "
            "manage.py register_model, then picked by its name")


def _unpacked(source: Path, workdir: Path) -> Path:
    """The model folder inside a zip (at its root or in one top-level folder)."""
    with zipfile.ZipFile(source) as archive:
        for info in archive.infolist():
            target = (workdir / info.filename).resolve()
            if not target.is_relative_to(workdir.resolve()):
                raise EncoderRejected(f"{source.name}: unsafe path in the archive: "
                                      f"{info.filename}")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise EncoderRejected(f"{source.name}: {info.filename} is a symbolic link; "
                                      "zip the model's files themselves (zip without -y)")
        archive.extractall(workdir)
    configs = sorted(workdir.rglob("config.json"), key=lambda p: len(p.parts))
    if not configs:
        raise EncoderRejected(f"{source.name}: no config.json in the archive")
    return configs[0].parent


def _refuse_links_out_of(folder: Path) -> None:
    """A symbolic link in the folder may point inside it (copied as the file it names), never
    out of it: registering must not copy other files of the server into the model store."""
    root = folder.resolve()
    for path in folder.rglob("*"):
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            raise EncoderRejected(
                f"{path.relative_to(folder)} is a symbolic link out of {folder}; copy the "
                "files themselves into one folder (cp -rL) and register that")


def _validate(folder: Path, label_names: list[str], texts: list[str]) -> dict:
    """Load tokenizer and classifier, predict a few texts; facts about the model."""
    import torch

    from trainer.models import load_for_training

    try:
        tokenizer, model = load_for_training(str(folder), label_names)
        batch = tokenizer(texts, truncation=True, max_length=64, padding=True,
                          return_tensors="pt")
        with torch.inference_mode():
            logits = model(**batch).logits
    except Exception as exc:
        raise EncoderRejected(f"the model does not load or predict: {type(exc).__name__}: "
                              f"{exc}") from exc
    if tuple(logits.shape) != (len(texts), len(label_names)) or not torch.isfinite(logits).all():
        raise EncoderRejected(f"the model predicted {tuple(logits.shape)} (not finite or not "
                              f"{len(texts)} x {len(label_names)} labels)")
    return {"model_type": model.config.model_type,
            "parameters": sum(p.numel() for p in model.parameters()),
            "vocab_size": len(tokenizer)}


def encoder_register(*, name: str, source: Path, project: Project | None = None,
                     description: str = "", replace: bool = False) -> RegisteredModel:
    """Check a model folder or zip and register it under `name` (see module doc)."""
    from trainer.models import BUILTIN_MODELS, registered_model_dir

    if not NAME.match(name) or name in BUILTIN_MODELS:
        raise EncoderRejected(f"{name!r} cannot be a model name: use lowercase letters, digits, "
                              "- and _, and none of the built-in names")
    existing = RegisteredModel.objects.filter(name=name).first()
    if existing and not replace:
        raise EncoderRejected(f"a model named {name!r} is registered already (--replace)")
    if not source.exists():
        raise EncoderRejected(f"{source} does not exist")
    labels = project.label_names if project else ["negative", "neutral", "positive"]
    texts = SAMPLE_TEXTS
    if project is not None:
        texts = list(project.items.order_by("random_key").values_list("text", flat=True)[:8])
        texts = texts or SAMPLE_TEXTS

    target = registered_model_dir(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".register-", dir=target.parent) as tmp:
        staging = Path(tmp) / "model"
        if source.is_dir():
            if not (source / "config.json").exists():
                raise EncoderRejected(f"{source} is not a model folder (no config.json)")
            _refuse_links_out_of(source)
            shutil.copytree(source, staging)
        elif zipfile.is_zipfile(source):
            shutil.move(_unpacked(source, Path(tmp) / "unzipped"), staging)
        else:
            raise EncoderRejected(f"{source} is neither a folder nor a zip file")
        facts = _validate(staging, labels, texts)
        size = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
        stored = f"{STORED}/{name}/{timezone.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        model_version_store(staging, stored)  # for the machines that share no disk with this one
        (staging / ".stored-as").write_text(stored)
        fields = dict(path=stored, source=str(source), description=description,
                      size_bytes=size, **facts)
        try:
            # A short transaction (the checks above take seconds and must not hold SQLite's
            # write lock); the rename comes last, so a failure rolls the row back.
            with transaction.atomic():
                registered, _ = RegisteredModel.objects.update_or_create(name=name,
                                                                         defaults=fields)
                if target.exists():  # --replace
                    shutil.rmtree(target)
                staging.rename(target)
        except BaseException:
            _stored_delete(stored)
            raise
    if existing and existing.path != stored:
        _stored_delete(existing.path)  # the registration it replaced
    return registered


STORED = "encoders"  # the artifacts storage's folder of registered models


def _stored_delete(prefix: str) -> None:
    if Path(prefix).is_absolute():  # registered before models were stored: a local folder
        return
    storage = artifacts_storage()
    try:
        for rel in stored_folder_files(prefix):
            storage.delete(f"{prefix}/{rel}")
    except FileNotFoundError:
        pass


def encoder_fetch(name: str) -> None:
    """Copy the registered model `name` to this machine (MODEL_DIR/registered/<name>) when
    it is not there, or is an older registration than the newest stored one. Reads the
    storage only (no database): trainer.models calls it before it looks for the folder."""
    from trainer.models import registered_model_dir

    if not NAME.match(name):
        return
    storage = artifacts_storage()
    try:
        registrations, _ = storage.listdir(f"{STORED}/{name}")
    except FileNotFoundError:
        return
    if not registrations:
        return
    newest = f"{STORED}/{name}/{max(registrations)}"
    target = registered_model_dir(name)
    marker = target / ".stored-as"
    if marker.exists() and marker.read_text() == newest:
        return
    stored_folder_download(newest, target, replace=True, note=newest)

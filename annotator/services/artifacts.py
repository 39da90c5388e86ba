"""The "artifacts" storage: what machines that share no disk share (a folder on one machine,
or an object store such as S3). Model versions live there, one folder per version (and
attempt), written once by training, read by pool ranking, serving, label review and
downloads; so do scoring chunks, pool embeddings and kept uploads.

`model_version_local_path` gives a local folder to load a version from (the file system
storage in place; other storages copied once into VAR_DIR/model-cache); `stored_file_local`
a local path to read one stored file from.
"""

import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages

from annotator.models import ModelVersion


def _artifacts():
    return storages["artifacts"]


def artifact_files(version: ModelVersion) -> list[str]:
    """Paths (relative to the version folder) of every stored file of a version."""
    storage, found = _artifacts(), []

    def walk(rel: str) -> None:
        dirs, files = storage.listdir(f"{version.artifact_path}/{rel}".rstrip("/"))
        found.extend(f"{rel}{name}" for name in files)
        for name in dirs:
            walk(f"{rel}{name}/")

    walk("")
    return sorted(found)


def model_version_config(version: ModelVersion) -> dict:
    """The version's config.json (architecture, layers, labels); {} where it cannot be read."""
    try:
        with _artifacts().open(f"{version.artifact_path}/config.json") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def model_version_store(folder: Path, prefix: str) -> None:
    """Copy into a prefix no other attempt uses (storage.save would rename a clash)."""
    storage = _artifacts()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with open(path, "rb") as fh:
            storage.save(f"{prefix}/{path.relative_to(folder).as_posix()}", File(fh))


def _local_path(storage, name: str) -> Path | None:
    """Where a file system storage keeps `name`; None for a remote storage."""
    try:
        return Path(storage.path(name))
    except NotImplementedError:
        return None


def model_version_local_path(version: ModelVersion) -> Path:
    """A local folder with the version's save_pretrained files (for loading models).

    The file system storage is used in place; other storages are copied once into
    VAR_DIR/model-cache, whole or not at all: the files land in a folder of their own that is
    renamed into place last, so a process killed mid-copy, or two copying at once (gunicorn
    workers, pool chunks), never leave a folder with some files missing.
    """
    storage = _artifacts()
    local = _local_path(storage, version.artifact_path)
    if local is not None:
        return local
    target = Path(settings.VAR_DIR) / "model-cache" / version.artifact_path
    if target.is_dir():
        return target
    files = artifact_files(version)
    if not files:
        raise FileNotFoundError(f"no stored files for {version} under {version.artifact_path}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}-", dir=target.parent) as tmp:
        staging = Path(tmp) / "version"
        for rel in files:
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            with storage.open(f"{version.artifact_path}/{rel}") as src, open(
                staging / rel, "wb"
            ) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # not "another process put it there first"
                raise
    return target


@contextmanager
def stored_file_local(name: str) -> Iterator[Path]:
    """A path on this machine to read the stored file `name` from: the file itself on a file
    system storage, else a temporary copy (streamed to disk), deleted afterwards."""
    storage = _artifacts()
    local = _local_path(storage, name)
    if local is not None:
        yield local
        return
    with tempfile.TemporaryDirectory(prefix="stored-") as tmp:
        copy = Path(tmp) / Path(name).name
        with storage.open(name, "rb") as src, open(copy, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        yield copy


class _Pipe:
    """Write-only buffer for zipfile: the response drains it after each file chunk."""

    def __init__(self):
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


def model_version_zip_stream(version: ModelVersion):
    """The version's files as a zip, streamed. Zip64 for every entry: the size of a file is not
    known before it is streamed, and without zip64 one over 2 GiB would abort the download."""
    storage, pipe = _artifacts(), _Pipe()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1,
                         allowZip64=True) as archive:
        for rel in artifact_files(version):
            src = storage.open(f"{version.artifact_path}/{rel}")
            with src, archive.open(rel, "w", force_zip64=True) as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
                    yield pipe.drain()
    yield pipe.drain()

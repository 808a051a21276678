"""The Parquet (or CSV) folder store: a pair of files per run, committed in two phases."""

from __future__ import annotations

import fcntl
import json
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow.lib as pa_errors
import pyarrow.parquet as pq

from dealscore.io.scores.store import (
    PREVIOUS,
    Run,
    StoreError,
    StoreFault,
    as_history,
    os_cause,
)
from dealscore.schemas.features import OPPORTUNITY_ID
from dealscore.schemas.scores import HISTORY_COLUMNS, RejectedRows, ScoreRows
from dealscore.schemas.tables import TIMESTAMP_DTYPE


def _slug_before(name: str, since: pd.Timestamp) -> bool:
    """Whether a run file's name (`Run.slug`) says its as_of is before `since`; False when the
    name says nothing (the rows are filtered after reading then)."""
    stamp = pd.to_datetime(name[:15], format="%Y%m%dT%H%M%S", errors="coerce", utc=True)
    return bool(pd.notna(stamp) and stamp < since.floor("s"))


RUN_FILE = re.compile(r"^\d{8}T\d{6}_.+_v[^_/]+\.(parquet|csv)$")  # Run.slug + suffix


JOURNAL = ".dealscore-commit.json"  # the run whose staged files are committed (FolderStore)
STAGED = re.compile(r"^\.(?P<name>.+)\.(?P<token>[0-9a-f]{32})\.tmp$")  # .<name>.<token>.tmp


def _sync(path: Path) -> None:
    """Flush a file's or a folder's entries to the disk (a folder: its renames)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class FolderStore:
    """`DIR/scores/<run>.parquet` and `DIR/rejected/<run>.parquet` (or .csv), one pair per run.

    A run's pair is committed in two phases, so a crash can never leave one run's rejects
    beside another run's scores: both files are written under temporary names, then a journal
    naming them (`DIR/.dealscore-commit.json`) is put in place, the commit point, then both are
    renamed over the old pair and the journal removed. Whoever takes the folder's lock next (a
    writer, a reader, opening the store) finishes a committed run's renames and deletes the
    files of a run that died before its commit. Readers hold the lock: they see the old pair
    or the new one, whole."""

    def __init__(self, folder: Path, fmt: str = "parquet"):
        if fmt not in ("parquet", "csv"):
            raise StoreError(f"score files must be parquet or csv, got {fmt!r}")
        self.folder, self.fmt = Path(folder), fmt
        self._check_writable()
        if self.folder.is_dir():  # what a crashed run left, now, unless a writer is at work
            try:
                with self._locked(wait=False) as locked:
                    if locked:
                        self._recover()
            except OSError as exc:
                raise StoreFault(
                    f"cannot use score destination {self.describe()}: {os_cause(exc)}; "
                    "nothing was scored"
                ) from exc

    def _check_writable(self) -> None:
        """Fail now, before any scoring, if the folder cannot take the scores."""
        folder = self.folder
        if folder.exists() and not folder.is_dir():
            raise StoreError(f"score destination {folder} is a file, not a folder")
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise StoreError(f"score destination {folder} is under {existing}, which is a file")
        if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
            raise StoreError(f"score destination {folder}: {existing} is not writable")
        for sub in ("scores", "rejected"):
            if (folder / sub).exists() and not (folder / sub).is_dir():
                raise StoreError(f"score destination {folder / sub} is a file, not a folder")

    def describe(self) -> str:
        return f"{self.folder}/scores/*.{self.fmt}"

    @contextmanager
    def _locked(self, wait: bool = True) -> Iterator[bool]:
        """The folder's lock, held by one writer or reader at a time; without `wait`, yields
        False at once when someone holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".dealscore.lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _committed(self) -> tuple[str, str] | None:
        """(run file name, token) of the committed run in the journal; None when there is
        none. A journal naming anything but a run file of this folder is not ours: ignored."""
        try:
            entry = json.loads((self.folder / JOURNAL).read_text())
            name, token = entry["name"], entry["token"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # written whole or not at all (renamed into place): not our journal
        if not (isinstance(name, str) and isinstance(token, str)):
            return None
        if not RUN_FILE.match(name) or not re.fullmatch(r"[0-9a-f]{32}", token):
            return None
        return name, token

    def _recover(self) -> None:
        """With the lock held: finish a committed run's renames (roll forward), then delete
        the temporary files of runs that died before their commit."""
        committed = self._committed()
        if committed is not None:
            name, token = committed
            for sub in ("rejected", "scores"):
                staged = self.folder / sub / f".{name}.{token}.tmp"
                if staged.exists():
                    os.replace(staged, self.folder / sub / name)
                    _sync(staged.parent)
        (self.folder / JOURNAL).unlink(missing_ok=True)
        for place in (self.folder, self.folder / "scores", self.folder / "rejected"):
            if not place.is_dir():
                continue
            for path in place.glob(".*.tmp"):
                match = STAGED.match(path.name)
                if match and (RUN_FILE.match(match["name"]) or match["name"] == JOURNAL):
                    path.unlink(missing_ok=True)

    def previous(self, run: Run) -> pd.DataFrame:
        history = self.history(run.model_name)
        history = history[history["as_of"] < run.as_of].astype({"as_of": TIMESTAMP_DTYPE})
        latest = history.sort_values("as_of").drop_duplicates(OPPORTUNITY_ID, keep="last")
        return latest.rename(
            columns={
                "win_probability": "previous_probability",
                "as_of": "previous_as_of",
                "model_version": "previous_model_version",
            }
        )[PREVIOUS].reset_index(drop=True)

    def _read(self, path: Path) -> pd.DataFrame:
        """One run's file, only the history's columns (those it has); a file dealscore cannot
        read there is a StoreError naming it."""
        wanted = set(HISTORY_COLUMNS)
        text = {OPPORTUNITY_ID: str, "model_name": str, "model_version": str, "band": str}
        try:
            if self.fmt == "parquet":
                names = pq.read_schema(path).names
                return pd.read_parquet(path, columns=[c for c in names if c in wanted])
            return pd.read_csv(path, usecols=lambda c: c in wanted, dtype=text)
        except (OSError, ValueError, pa_errors.ArrowException) as exc:
            raise StoreError(
                f"{path} is named like a run's scores but cannot be read "
                f"({exc.__class__.__name__}: {str(exc)[:200]}); move it out of {path.parent}"
            ) from exc

    def _runs(self) -> list[Path]:
        """The score files of runs: named `<as_of>_<model>_v<version>` (`Run.slug`); any other
        file in the folder is not dealscore's and is left alone."""
        paths = sorted((self.folder / "scores").glob(f"*.{self.fmt}"))
        return [p for p in paths if RUN_FILE.match(p.name)]

    def history(
        self, model_name: str | None = None, since: pd.Timestamp | None = None
    ) -> pd.DataFrame:
        frames = []
        if (self.folder / "scores").is_dir():
            with self._locked():  # no run is half-committed while its files are read
                self._recover()
                paths = self._runs()
                if since is not None:  # a run's file is named after its as_of: skip older ones
                    paths = [p for p in paths if not _slug_before(p.name, since)]
                frames = [self._read(path) for path in paths]
        if not frames:
            return as_history(pd.DataFrame(columns=HISTORY_COLUMNS), model_name)
        return as_history(pd.concat(frames, ignore_index=True), model_name, since)

    def _stage(self, frame: pd.DataFrame, path: Path) -> None:
        """A frame written under its temporary name, on the disk before the commit."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.fmt == "parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
        _sync(path)

    def write(self, run: Run, scores: ScoreRows, rejected: RejectedRows) -> None:
        name, token = f"{run.slug()}.{self.fmt}", uuid.uuid4().hex
        staged = {sub: self.folder / sub / f".{name}.{token}.tmp" for sub in ("rejected", "scores")}
        journal = self.folder / f".{JOURNAL}.{token}.tmp"
        committed = False
        try:
            with self._locked():
                self._recover()
                try:
                    self._stage(rejected, staged["rejected"])
                    self._stage(scores, staged["scores"])
                    journal.write_text(json.dumps({"name": name, "token": token}))
                    _sync(journal)
                    os.replace(journal, self.folder / JOURNAL)  # the commit point
                    committed = True
                    _sync(self.folder)
                except BaseException:
                    if not committed:
                        for path in (*staged.values(), journal):
                            path.unlink(missing_ok=True)
                    raise
                self._recover()  # both renames, then the journal goes
        except (OSError, pa_errors.ArrowException) as exc:
            if committed:
                raise StoreFault(
                    f"cannot finish writing scores to {self.describe()}: {os_cause(exc)}; the "
                    "run is committed and its files are put in place when the store is next "
                    "opened"
                ) from exc
            raise StoreFault(
                f"cannot write scores to {self.describe()}: {os_cause(exc)}; nothing of this "
                "run was written, the previous scores are as they were"
            ) from exc

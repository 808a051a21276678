"""What every score store shares: the run, the protocol, the errors and the history's shape."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from dealscore.errors import DealscoreError
from dealscore.schemas.features import OPPORTUNITY_ID
from dealscore.schemas.scores import HISTORY_COLUMNS, RejectedRows, ScoreHistory, ScoreRows

SCORES_TABLE = "scores"
REJECTED_TABLE = "scores_rejected"
PREVIOUS = [OPPORTUNITY_ID, "previous_probability", "previous_as_of", "previous_model_version"]


class StoreError(DealscoreError, RuntimeError):
    """The destination cannot be reached or written."""


class StoreFault(StoreError):
    """The destination failed while in use (locked, full, read-only, gone): one line naming it
    and the cause, never a row. Exit 1: the command was right, the run did not happen."""

    exit_code = 1


# What a failed file-system call means, by errno (pyarrow's errors carry only the text).
OS_CAUSES = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EIO: "input/output error",
}


def first_line(text: str, limit: int = 200) -> str:
    """The text's first line, cut to `limit` characters ("" for no text)."""
    lines = text.strip().splitlines()
    return lines[0][:limit] if lines else ""


def os_cause(exc: BaseException) -> str:
    """The cause of a failed file-system call in a few words ("disk full")."""
    code = getattr(exc, "errno", None)
    if code in OS_CAUSES:
        return OS_CAUSES[code]
    text = str(exc)
    for number, cause in OS_CAUSES.items():
        if os.strerror(number) in text:
            return cause
    return first_line(f"{exc.__class__.__name__}: {text}")


def read_only_file_system(path: Path) -> bool:
    """Whether the path is on a file system mounted read-only (False when it cannot be told)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


@dataclass(frozen=True)
class Run:
    as_of: pd.Timestamp
    model_name: str
    model_version: str

    def slug(self) -> str:
        return f"{self.as_of:%Y%m%dT%H%M%S}_{self.model_name}_v{self.model_version}"


class ScoreStore(Protocol):
    def previous(self, run: Run) -> pd.DataFrame:
        """Each deal's latest score by this model name before the run's as_of."""

    def write(self, run: Run, scores: ScoreRows, rejected: RejectedRows) -> None:
        """Replace the run's rows with these, atomically."""

    def history(
        self, model_name: str | None = None, since: pd.Timestamp | None = None
    ) -> pd.DataFrame:
        """Every score written (by this model name, as of `since` or later), as `ScoreHistory`
        rows."""

    def describe(self) -> str: ...


def as_history(
    frame: pd.DataFrame, model_name: str | None, since: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Rows of one model name (all without one) as of `since` or later, in the `ScoreHistory`
    shape; columns an older dealscore did not write come back empty."""
    frame = frame.reindex(columns=HISTORY_COLUMNS)
    frame = frame.assign(as_of=pd.to_datetime(frame["as_of"], utc=True))
    keep = pd.Series(True, index=frame.index)
    if model_name is not None:
        keep &= frame["model_name"] == model_name
    if since is not None:
        keep &= frame["as_of"] >= since
    return ScoreHistory.validate(frame[keep].reset_index(drop=True))

"""The failures a user can act on. Each says what went wrong and why; the CLI prints the message
and exits with `exit_code`, once, for every command. Anything else is a bug and keeps its
traceback."""

from __future__ import annotations

from collections.abc import Iterable


class DealscoreError(Exception):
    """A failure the user can act on (exit 2: the command, its inputs or its environment)."""

    exit_code = 2


class InputError(DealscoreError, ValueError):
    """An option, setting or file the job cannot use."""


class DataError(DealscoreError, ValueError):
    """The data cannot do what was asked (too little history, nothing to group by)."""


class ModelMismatchError(InputError):
    """The model expects features this version of dealscore does not build."""


def require_features(model: str, needs: Iterable[str], built: Iterable[str]) -> None:
    """ModelMismatchError naming what `model` needs that this version does not build (a model
    saved by a newer dealscore)."""
    have = set(built)
    missing = [name for name in needs if name not in have]
    if missing:
        raise ModelMismatchError(
            f"{model} needs {len(missing)} feature(s) this dealscore does not build, e.g. "
            f"{missing[:5]}: retrain it with this version"
        )

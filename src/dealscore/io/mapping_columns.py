"""How one contract column of a mapping is made from source columns: the column's rules
(docs/mappings.md), read and checked from the mapping's YAML, and applied to a source frame."""

from __future__ import annotations

import re
import warnings
import zoneinfo
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from dealscore.errors import InputError

_COLUMN_KEYS = {
    "from",
    "value",
    "values",
    "other",
    "patterns",
    "match",
    "default",
    "format",
    "timezone",
    "scale",
    "only_if",
    "when",
    "else",
    "divide_by",
}


class MappingError(InputError):
    """A mapping file that cannot be applied, with the place it went wrong."""


_SEPARATORS = re.compile(r"[\s_\-]+")
_FLAGS = {"1": "true", "yes": "true", "0": "false", "no": "false", "1.0": "true", "0.0": "false"}


def _norm(value: Any) -> str:
    """Compare flags and labels loosely: True, 'true', 'TRUE', '1' are one value, and so are a
    label and its API name ('Best Case', 'BestCase', 'best_case')."""
    text = _SEPARATORS.sub("", str(value).strip().lower())
    return _FLAGS.get(text, text)


def _normalised(values: pd.Series) -> pd.Series:
    text = values.astype("str").str.strip().str.lower().str.replace(_SEPARATORS, "", regex=True)
    return text.replace(_FLAGS)


def _contains(text: pd.Series, pattern: re.Pattern[str]) -> pd.Series:
    """Regex search per value; users' patterns may have groups, which only matter to extract."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="This pattern is interpreted as a regular expression"
        )
        return text.str.contains(pattern, na=False)


def as_list(value: Any) -> list[Any]:
    """The value itself if a list, else a list of it."""
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Condition:
    """All of {source column: value or list of values} hold (loose comparison)."""

    equals: dict[str, list[str]]

    @classmethod
    def parse(cls, spec: Any, where: str) -> Condition:
        if not isinstance(spec, dict) or not spec:
            raise MappingError(
                f"{where}: a condition is a mapping of column: value(s), got {spec!r}"
            )
        return cls({str(k): [_norm(v) for v in as_list(v)] for k, v in spec.items()})

    def columns(self) -> set[str]:
        return set(self.equals)

    def mask(self, frame: pd.DataFrame) -> pd.Series:
        result = pd.Series(True, index=frame.index)
        for column, accepted in self.equals.items():
            result &= frame[column].notna() & _normalised(frame[column]).isin(accepted)
        return result


def _check_shapes(spec: dict[str, Any], where: str) -> None:
    """Each key's value has the shape it must have, said with the place and an example."""
    for key in ("values", "patterns"):
        if key in spec and not isinstance(spec[key], dict):
            raise MappingError(
                f"{where}.{key}: expected a mapping of from: to (e.g. {{Closed Won: won}}), "
                f"got {spec[key]!r}"
            )
    rules = spec.get("when", [])
    if not all(
        isinstance(r, dict) and set(r) <= {"if", "then"} and "if" in r for r in as_list(rules)
    ):
        raise MappingError(
            f"{where}.when: expected a list of {{if: {{column: value}}, then: x}}, got {rules!r}"
        )
    if "timezone" in spec:
        try:
            zoneinfo.ZoneInfo(str(spec["timezone"]))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise MappingError(
                f"{where}.timezone: unknown time zone {spec['timezone']!r} (e.g. Europe/Paris)"
            ) from exc
    if "format" in spec:
        try:
            pd.to_datetime(pd.Series(["2000-01-01"]), format=str(spec["format"]), errors="coerce")
        except ValueError as exc:
            raise MappingError(
                f"{where}.format: bad date format {spec['format']!r}: {exc}"
            ) from exc
    if "scale" in spec and not isinstance(spec["scale"], int | float):
        raise MappingError(f"{where}.scale: expected a number, got {spec['scale']!r}")


@dataclass(frozen=True)
class ColumnSpec:
    """How one contract column is made from source columns."""

    target: str
    sources: tuple[str, ...] = ()
    constant: Any = None
    values: dict[str, Any] | None = None
    other: Any = None
    patterns: tuple[tuple[str, re.Pattern[str]], ...] = ()
    match: re.Pattern[str] | None = None
    default: Any = None
    format: str | None = None
    timezone: str | None = None
    scale: float | None = None
    only_if: Condition | None = None
    when: tuple[tuple[Condition, Any], ...] = ()
    otherwise: Any = None
    divide_by: str | None = None  # a source column (an exchange rate); used when present

    @classmethod
    def parse(cls, target: str, spec: Any, where: str) -> ColumnSpec:
        if isinstance(spec, str):
            return cls(target, sources=(spec,))
        if not isinstance(spec, dict):
            raise MappingError(
                f"{where}.{target}: expected a source column name or a mapping, got {spec!r}"
            )
        unknown = set(spec) - _COLUMN_KEYS
        if unknown:
            raise MappingError(
                f"{where}.{target}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_COLUMN_KEYS)}"
            )
        if sum(k in spec for k in ("from", "value", "when")) != 1:
            raise MappingError(f"{where}.{target}: give exactly one of 'from', 'value' or 'when'")
        _check_shapes(spec, f"{where}.{target}")
        try:
            patterns = tuple(
                (label, re.compile(rx)) for label, rx in (spec.get("patterns") or {}).items()
            )
            match = re.compile(spec["match"]) if "match" in spec else None
        except re.error as exc:
            raise MappingError(f"{where}.{target}: bad regular expression: {exc}") from exc
        when = tuple(
            (Condition.parse(rule.get("if"), f"{where}.{target}.when"), rule.get("then"))
            for rule in as_list(spec.get("when", []))
        )
        return cls(
            target,
            sources=tuple(str(s) for s in as_list(spec["from"])) if "from" in spec else (),
            constant=spec.get("value"),
            values={_norm(k): v for k, v in spec["values"].items()} if "values" in spec else None,
            other=spec.get("other"),
            patterns=patterns,
            match=match,
            default=spec.get("default"),
            format=spec.get("format"),
            timezone=spec.get("timezone"),
            scale=float(spec["scale"]) if "scale" in spec else None,
            only_if=Condition.parse(spec["only_if"], f"{where}.{target}.only_if")
            if "only_if" in spec
            else None,
            when=when,
            otherwise=spec.get("else"),
            divide_by=str(spec["divide_by"]) if "divide_by" in spec else None,
        )

    def for_columns(self, columns: set[str]) -> ColumnSpec:
        """This spec with a coalesce list cut to the columns the source has (one is enough)."""
        present = tuple(s for s in self.sources if s in columns)
        return replace(self, sources=present) if present else self

    def needs(self) -> set[str]:
        """Source columns this spec reads."""
        needed = set(self.sources)
        if self.only_if:
            needed |= self.only_if.columns()
        for condition, _ in self.when:
            needed |= condition.columns()
        return needed

    def apply(self, frame: pd.DataFrame) -> pd.Series:
        if self.when:
            out = pd.Series(self.otherwise, index=frame.index, dtype="object")
            # Later rules are written as fallbacks: apply in reverse so the first match wins.
            for condition, value in reversed(self.when):
                out = out.mask(condition.mask(frame), value)
        elif self.sources:
            out = frame[self.sources[0]]
            for source in self.sources[1:]:
                out = out.fillna(frame[source])
        else:
            out = pd.Series(self.constant, index=frame.index, dtype="object")
        if self.match is not None:
            out = out.where(_contains(out.astype("str"), self.match))
        if self.patterns:
            out = self._classify(out)
        elif self.values is not None:
            mapped = _normalised(out).map(self.values)
            fallback = out if self.other is None else pd.Series(self.other, index=out.index)
            out = mapped.where(mapped.notna() | out.isna(), fallback.where(out.notna()))
        if self.scale is not None:
            out = pd.to_numeric(out, errors="coerce") * self.scale
        if self.divide_by is not None and self.divide_by in frame:
            rate = pd.to_numeric(frame[self.divide_by], errors="coerce")
            out = pd.to_numeric(out, errors="coerce") / rate.where(rate > 0).fillna(1.0)
        if self.format or self.timezone:
            out = _parse_times(out, self.format, self.timezone)
        if self.only_if is not None:
            out = out.where(self.only_if.mask(frame))
        if self.default is not None:
            out = out.fillna(self.default)
        return out

    def _classify(self, values: pd.Series) -> pd.Series:
        text = values.astype("str")
        out = pd.Series(self.other, index=values.index, dtype="object")
        for label, pattern in reversed(self.patterns):
            out = out.mask(_contains(text, pattern), label)
        return out.where(values.notna(), self.default)


def _parse_times(values: pd.Series, fmt: str | None, timezone: str | None) -> pd.Series:
    """Parse with an explicit format / source zone; keep unparseable text for the contract report."""
    parsed = pd.to_datetime(values, format=fmt, errors="coerce")
    if timezone is not None:
        if parsed.dt.tz is None:
            parsed = parsed.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
        parsed = parsed.dt.tz_convert("UTC")
    failed = parsed.isna() & values.notna()
    if not failed.any():
        return parsed
    return parsed.astype("object").where(~failed, values)

"""Column mappings: translate a real CRM export into the contract tables (docs/mappings.md).

A mapping is YAML. For each contract table it names the source table(s) of the export and, for
each contract column, where its values come from and how they are cleaned. Source tables are
read through a `Source` (files or SQL), so the mapping itself knows nothing about I/O.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from dealscore.io import yaml_files
from dealscore.io.mapping_columns import ColumnSpec, Condition, MappingError, as_list
from dealscore.schemas.tables import TABLE_MODELS, TABLE_NAMES, Activities

PRESETS: tuple[str, ...] = ("salesforce",)

_PART_KEYS = {"source", "clean", "join", "columns", "where"}


@dataclass(frozen=True)
class Join:
    """Bring columns from a small lookup table, many-to-one on a key."""

    source: str
    left_on: str
    right_on: str
    columns: tuple[str, ...]
    optional: bool = False  # skipped with a note when the lookup or its key is not there

    @classmethod
    def parse(cls, spec: Any, where: str) -> Join:
        # Not "on": YAML 1.1 reads a bare `on` key as the boolean True.
        if not isinstance(spec, dict) or "source" not in spec or "key" not in spec:
            raise MappingError(f"{where}: a join needs 'source' and 'key'")
        unknown = set(spec) - {"source", "key", "columns", "optional"}
        if unknown:
            raise MappingError(f"{where}: unknown key(s) {sorted(unknown)} in a join")
        key = spec["key"]
        if isinstance(key, dict) and (
            len(key) != 1 or not all(isinstance(v, str | int) for v in (*key, *key.values()))
        ):
            raise MappingError(
                f"{where}: a join key is a column name or one {{left column: lookup column}}, "
                f"got {key!r}"
            )
        left, right = next(iter(key.items())) if isinstance(key, dict) else (key, key)
        return cls(
            str(spec["source"]),
            str(left),
            str(right),
            tuple(as_list(spec.get("columns", []))),
            bool(spec.get("optional", False)),
        )


@dataclass(frozen=True)
class TablePart:
    """One source table's contribution to a contract table."""

    source: str
    columns: tuple[ColumnSpec, ...]
    clean: dict[str, dict[str, Any]] = field(default_factory=dict)
    joins: tuple[Join, ...] = ()
    where: Condition | None = None

    @classmethod
    def parse(cls, table: str, spec: Any) -> TablePart:
        where = f"tables.{table}"
        if not isinstance(spec, dict) or "source" not in spec:
            raise MappingError(f"{where}: each part needs a 'source' (the export's table name)")
        unknown = set(spec) - _PART_KEYS
        if unknown:
            raise MappingError(
                f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_PART_KEYS)}"
            )
        for key in ("columns", "clean"):
            if not isinstance(spec.get(key) or {}, dict):
                raise MappingError(f"{where}.{key}: expected a mapping, got {spec[key]!r}")
        bad_clean = {c: v for c, v in (spec.get("clean") or {}).items() if not isinstance(v, dict)}
        if bad_clean:
            raise MappingError(
                f"{where}.clean: each column maps values to fixes ({{column: {{from: to}}}}), "
                f"got {bad_clean!r}"
            )
        columns = [
            ColumnSpec.parse(str(target), column_spec, f"{where}.columns")
            for target, column_spec in (spec.get("columns") or {}).items()
        ]
        return cls(
            source=str(spec["source"]),
            columns=tuple(columns),
            clean={str(k): dict(v) for k, v in (spec.get("clean") or {}).items()},
            joins=tuple(Join.parse(j, f"{where}.join") for j in as_list(spec.get("join", []))),
            where=Condition.parse(spec["where"], f"{where}.where") if "where" in spec else None,
        )


_TOP_KEYS = {"name", "tables", "encoding", "null_values"}


@dataclass(frozen=True)
class Mapping:
    name: str
    tables: dict[str, tuple[TablePart, ...]]
    encoding: str | None = None  # of the export's text files; None: UTF-8, else ISO-8859-1
    null_values: tuple[str, ...] = ()  # values that mean "empty" in every source column

    @classmethod
    def parse(cls, spec: Any, name: str = "mapping") -> Mapping:
        if not isinstance(spec, dict) or not isinstance(spec.get("tables"), dict):
            raise MappingError(f"{name}: a mapping has a top-level 'tables:' section")
        unknown = set(spec) - _TOP_KEYS
        if unknown:
            raise MappingError(
                f"{name}: unknown top-level key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}"
            )
        unknown = set(spec["tables"]) - set(TABLE_NAMES)
        if unknown:
            raise MappingError(
                f"{name}: unknown contract table(s) {sorted(unknown)}; expected some of {list(TABLE_NAMES)}"
            )
        tables = {
            table: tuple(TablePart.parse(table, part) for part in as_list(parts))
            for table, parts in spec["tables"].items()
        }
        encoding = spec.get("encoding")
        if encoding is not None:
            try:
                codecs.lookup(str(encoding))
            except LookupError as exc:
                raise MappingError(f"{name}: unknown encoding {encoding!r}") from exc
        return cls(
            str(spec.get("name", name)),
            tables,
            None if encoding is None else str(encoding),
            tuple(str(v) for v in as_list(spec.get("null_values", []))),
        )


def load_mapping(name_or_path: str | Path) -> Mapping:
    """A preset by name ('salesforce') or a YAML file."""
    if str(name_or_path) in PRESETS:
        text = resources.files("dealscore.io.presets").joinpath(f"{name_or_path}.yaml").read_text()
        label = str(name_or_path)
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise MappingError(
                f"mapping {name_or_path!r} is neither a preset ({', '.join(PRESETS)}) nor a file"
            )
        label = str(path)
        try:
            text = yaml_files.read_text(path, "a mapping")
        except ValueError as exc:
            raise MappingError(f"{label}: {exc}") from exc
    try:
        spec = yaml_files.load(text, "a mapping")
    except yaml.YAMLError as exc:
        raise MappingError(f"{label}: not valid YAML: {exc}") from exc
    return Mapping.parse(spec, label)


ReadSource = Callable[[str], "pd.DataFrame | None"]


@dataclass
class MappingResult:
    frames: dict[str, pd.DataFrame]
    notes: list[str]


def _apply_part(
    table: str, part: TablePart, read: ReadSource, notes: list[str]
) -> pd.DataFrame | None:
    frame = read(part.source)
    if frame is None:
        notes.append(f"{table}: source table {part.source!r} is not in the export; skipped")
        return None
    for column, fixes in part.clean.items():
        if column in frame:
            frame = frame.assign(**{column: frame[column].replace(fixes)})
    for join in part.joins:
        frame = _join(table, part.source, frame, join, read)
    if part.where is not None:
        missing = part.where.columns() - set(frame.columns)
        if missing:
            raise MappingError(
                f"{table}: 'where' names column(s) {sorted(missing)} not in {part.source!r}"
            )
        frame = frame[part.where.mask(frame)]
    out = {}
    required = {c for c, s in TABLE_MODELS[table].to_schema().columns.items() if s.required}
    available = set(frame.columns)
    for spec in part.columns:
        spec = spec.for_columns(available)
        missing = spec.needs() - available
        if missing:
            note = (
                f"{table}.{spec.target}: source column(s) {sorted(missing)} not in {part.source!r}"
            )
            if spec.target in required:
                raise MappingError(
                    f"{note}; this column is required. Columns there: {list(frame.columns)[:30]}"
                )
            notes.append(note + "; left out")
            continue
        out[spec.target] = spec.apply(frame)
        if spec.divide_by is not None and spec.divide_by in frame:
            notes.append(
                f"{table}.{spec.target}: divided by {part.source}.{spec.divide_by} "
                "(converted to the corporate currency)"
            )
    return pd.DataFrame(out, index=frame.index).reset_index(drop=True)


def _join(
    table: str, source: str, frame: pd.DataFrame, join: Join, read: ReadSource
) -> pd.DataFrame:
    lookup = read(join.source)
    if join.optional and (lookup is None or join.left_on not in frame):
        return frame
    if lookup is None:
        raise MappingError(f"{table}: lookup table {join.source!r} is not in the export")
    wanted = [join.right_on, *join.columns]
    missing = [c for c in wanted if c not in lookup] + (
        [join.left_on] if join.left_on not in frame else []
    )
    if missing:
        raise MappingError(
            f"{table}: join of {source!r} with {join.source!r}: column(s) {missing} not found"
        )
    if lookup[join.right_on].duplicated().any():
        dups = lookup.loc[lookup[join.right_on].duplicated(), join.right_on].unique()[:5].tolist()
        raise MappingError(
            f"{table}: lookup {join.source}.{join.right_on} is not unique, e.g. {dups}"
        )
    right = (
        lookup[wanted].rename(columns={join.right_on: join.left_on})
        if join.right_on != join.left_on
        else lookup[wanted]
    )
    return frame.merge(
        right, on=join.left_on, how="left", validate="many_to_one", suffixes=("", f"_{join.source}")
    )


def _orphans_dropped(frame: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Activities tied to neither a deal nor an account (list emails) cannot be used: dropped."""
    links = [c for c in (Activities.opportunity_id, Activities.account_id) if c in frame]
    orphan = frame[links].isna().all(axis=1) if links else pd.Series(False, index=frame.index)
    if orphan.any():
        notes.append(
            f"activities: {int(orphan.sum()):,} rows linked to neither a deal nor an account "
            "(list emails, say) dropped"
        )
    return frame[~orphan].reset_index(drop=True)


def apply_mapping(mapping: Mapping, read: ReadSource) -> MappingResult:
    """Contract-named frames (not yet validated) from an export read through `read`."""
    notes: list[str] = []
    frames: dict[str, pd.DataFrame] = {}
    if mapping.null_values:
        plain = read

        def read(name: str) -> pd.DataFrame | None:
            frame = plain(name)
            return None if frame is None else frame.replace(list(mapping.null_values), None)

    for table, parts in mapping.tables.items():
        pieces = [
            p for p in (_apply_part(table, part, read, notes) for part in parts) if p is not None
        ]
        if pieces:
            frames[table] = pd.concat(pieces, ignore_index=True) if len(pieces) > 1 else pieces[0]
    if "activities" in frames:
        frames["activities"] = _orphans_dropped(frames["activities"], notes)
    return MappingResult(frames, notes)

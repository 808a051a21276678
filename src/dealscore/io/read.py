"""Read a CRM export: a folder of CSV/Parquet files or the tables of a SQL database."""

from __future__ import annotations

import codecs
import csv
import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa

from dealscore.errors import DealscoreError
from dealscore.io.mapping import Mapping, apply_mapping, load_mapping
from dealscore.io.parquet import read_parquet_file
from dealscore.io.secrets import redact
from dealscore.progress import Progress, silent
from dealscore.schemas.contract import require_dated, validate_tables
from dealscore.schemas.report import MAX_EXAMPLES, ContractError, Issue, ValidationReport
from dealscore.schemas.tables import LABEL_COLUMNS, TABLE_NAMES, CrmTables

FILE_SUFFIXES: dict[str, str] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".csv.gz": "csv",
}


class SourceError(DealscoreError, RuntimeError):
    """The export cannot be reached or read."""


class Source(Protocol):
    description: str
    notes: list[str]  # what reading had to decide (an encoding fallback, say)
    issues: list[Issue]  # what makes a file unreadable as a table (a ragged CSV row, say)

    def names(self) -> list[str]: ...

    def read(self, name: str) -> pd.DataFrame | None: ...


def table_suffix(path: Path) -> str:
    """The table-file suffix of a path (".csv.gz", ".parquet", ...), or "" for other files."""
    name = path.name.lower()
    return next((s for s in FILE_SUFFIXES if name.endswith(s)), "")


class FolderSource:
    """Files named after their tables; names match case-insensitively (Opportunity.csv).

    Text files are read as `encoding`; without one as UTF-8 (a byte-order mark is fine), and a
    file that is not valid UTF-8 as ISO-8859-1 (Salesforce's Data Export default), with a note.
    """

    def __init__(
        self,
        path: Path,
        encoding: str | None = None,
        labels: dict[str, tuple[str, ...]] | None = None,
    ):
        self.path = path
        self.description = str(path)
        self.encoding = encoding
        # Per table, the columns a Parquet file gives as categoricals (a byte a row, not text).
        self.labels = labels or {}
        self.notes: list[str] = []
        self.issues: list[Issue] = []
        self._files: dict[str, Path] = {}
        for file in sorted(path.iterdir()):
            suffix = table_suffix(file)
            # Everything named like a table is kept: a file, a Parquet dataset folder as Spark
            # writes it, or something unreadable (a folder called activities.csv, a broken
            # link), which fails when read rather than being skipped in silence.
            if suffix:
                stem = file.name[: -len(suffix)].lower()
                if stem in self._files:
                    raise SourceError(
                        f"{path}: both {self._files[stem].name} and {file.name} hold table {stem!r}"
                    )
                self._files[stem] = file

    def names(self) -> list[str]:
        return [f.name[: -len(table_suffix(f))] for f in self._files.values()]

    def read(self, name: str) -> pd.DataFrame | None:
        file = self._files.get(name.lower())
        if file is None:
            return None
        if not file.is_file() and not (
            file.is_dir() and FILE_SUFFIXES[table_suffix(file)] == "parquet"
        ):
            raise SourceError(
                f"cannot read {file}: table {name!r} is there but is not a file; fix or remove it"
            )
        try:
            if FILE_SUFFIXES[table_suffix(file)] == "parquet":
                return self._read_parquet(file, name)
            return self._read_csv(file, name)
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(f"cannot read {file}: {exc}") from exc

    def _read_parquet(self, file: Path, name: str) -> pd.DataFrame:
        """A Parquet file or dataset folder, its `labels` as categoricals."""
        labels = set(self.labels.get(name.lower(), ()))
        if file.is_dir():  # a dataset folder: Arrow reads its files as one table
            frame = pd.read_parquet(file, read_dictionary=list(labels) or None, pre_buffer=False)
        else:
            frame = read_parquet_file(file, labels)
        # What decoding freed stays with Arrow's allocator, which NumPy cannot reuse: hand it
        # back before the next table (another 0.6 GB on the activities).
        pa.default_memory_pool().release_unused()
        return frame

    def _read_csv(self, file: Path, name: str) -> pd.DataFrame:
        if self.encoding is not None:
            try:
                return self._strict_csv(file, name, self.encoding)
            except UnicodeDecodeError as exc:
                raise SourceError(f"cannot read {file} as {self.encoding}: {exc}") from exc
        try:
            return self._strict_csv(file, name, "utf-8-sig")
        except UnicodeDecodeError:
            self.notes.append(
                f"{file.name}: not UTF-8; read as ISO-8859-1 (set encoding to choose)"
            )
            return self._strict_csv(file, name, "iso-8859-1")

    def _strict_csv(self, file: Path, name: str, encoding: str) -> pd.DataFrame:
        """The file's rows as text, or an issue for each way it is not one table: rows with
        another number of fields than the header (padded or cut, they would shift or lose
        values) and a column the header names twice (one would be lost). Text as text: "NA" is
        a region, "0012" an id; only empty fields are missing. Quoted fields may hold commas and
        line breaks; a row is counted as one line however many it spans."""
        utf8 = codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")
        header = _csv_header(file, "utf-8-sig" if utf8 else encoding)
        ragged = _RaggedRows()
        try:
            table = pa_csv.read_csv(
                file,
                read_options=pa_csv.ReadOptions(
                    # Arrow reads UTF-8 itself (and skips a byte-order mark); others via Python.
                    encoding="utf8" if utf8 else encoding,
                    use_threads=False,  # one pass, and the line number of every ragged row
                ),
                parse_options=pa_csv.ParseOptions(
                    newlines_in_values=True, invalid_row_handler=ragged
                ),
                convert_options=pa_csv.ConvertOptions(
                    column_types={column: pa.string() for column in header},
                    strings_can_be_null=True,
                    null_values=[""],
                ),
            )
        except pa.ArrowInvalid as exc:
            if "UTF8" in str(exc):  # as Python says it, for the fallback
                raise UnicodeDecodeError(encoding, b"", 0, 1, str(exc)) from exc
            if "Empty CSV file" not in str(exc):
                raise
            # A header without a line break after it, and nothing else: a table of no rows.
            table = pa.table({f"f{i}": pa.array([], pa.string()) for i in range(len(header))})
            table = table.rename_columns(header)
        if table.column_names != header:  # every column must be read as text, by its name
            raise SourceError(
                f"cannot read the header of {file}: read as {table.column_names}, not {header}"
            )
        frame = table.to_pandas()
        if ragged.count:
            rule = f"{file.name} rows have the header's {len(header)} fields"
            self.issues.append(Issue(name, "*", rule, ragged.count, tuple(ragged.shown)))
        seen = pd.Index(header)
        for column in seen[seen.duplicated()].unique():
            where = " and ".join(str(i + 1) for i in (seen == column).nonzero()[0])
            rule = f"named once in the header of {file.name}"
            self.issues.append(Issue(name, str(column), rule, len(frame), (f"fields {where}",)))
        return frame.loc[:, ~frame.columns.duplicated()]


class _RaggedRows:
    """Arrow's handler of rows with another number of fields than the header: each is counted,
    the first few are kept as examples, and none is read."""

    def __init__(self) -> None:
        self.count = 0
        self.shown: list[str] = []

    def __call__(self, row: Any) -> str:
        self.count += 1
        if len(self.shown) < MAX_EXAMPLES:
            self.shown.append(f"line {row.number}: {row.actual_columns} fields")
        return "skip"


def _csv_header(file: Path, encoding: str) -> list[str]:
    """The column names of a CSV file: its first row (which may span lines, quoted)."""
    opener = gzip.open if table_suffix(file) == ".csv.gz" else open
    with opener(file, "rt", encoding=encoding, newline="") as text:
        header = next(csv.reader(text), None)
    if not header:
        raise SourceError(f"{file}: an empty file, without even a header line")
    return header


class SqlSource:
    """Tables of a database reached by a SQLAlchemy URL; names match case-insensitively."""

    def __init__(self, url: str):
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise SourceError(redact(f"not a database URL: {url!r} ({exc})")) from exc
        self.description = parsed.render_as_string(hide_password=True)
        self.notes: list[str] = []
        self.issues: list[Issue] = []
        database = parsed.database or ""
        local_file = database not in ("", ":memory:") and not database.startswith("file:")
        # SQLite would create an empty file there, and read nothing from it.
        if parsed.get_backend_name() == "sqlite" and local_file and not Path(database).is_file():
            raise SourceError(f"no SQLite database at {database}")
        try:
            self.engine = sa.create_engine(parsed)
        except (sa.exc.NoSuchModuleError, ImportError) as exc:
            raise SourceError(
                redact(f"cannot open {self.description}: {exc.__class__.__name__}: {exc}")
                + " (is the database driver installed? e.g. pip install 'psycopg[binary]')"
            ) from exc
        try:
            self._tables = {t.lower(): t for t in sa.inspect(self.engine).get_table_names()}
        except sa.exc.SQLAlchemyError as exc:
            raise SourceError(
                redact(f"cannot connect to {self.description}: {exc.__class__.__name__}: {exc}")
            ) from exc

    def names(self) -> list[str]:
        return list(self._tables.values())

    def read(self, name: str) -> pd.DataFrame | None:
        table = self._tables.get(name.lower())
        return None if table is None else pd.read_sql_table(table, self.engine)


# Folder names that say nothing about whose CRM it is: the name comes from the folder above.
GENERIC_FOLDERS = frozenset(
    {
        "crm",
        "data",
        "export",
        "exports",
        "tables",
        "raw",
        "csv",
        "parquet",
        "out",
        "output",
        "latest",
    }
)


def dataset_name(src: str | Path) -> str:
    """A short name for whose CRM an export is, from its location: data/demo/crm -> demo-crm,
    sqlite:///acme.db -> acme, exports/acme/2026-12-01 -> acme (a dated folder is a night's
    export, not another CRM). Lower case, letters, digits and dashes; "" when nothing is left."""
    text = str(src)
    if "://" in text:  # a database: its name, without credentials, host or query
        text = text.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        parts = [Path(text).stem]
    elif text.startswith("spark:"):
        parts = [text.removeprefix("spark:")]
    else:
        path = Path(text).expanduser().resolve()
        parts = [
            p.name[: -len(table_suffix(p))] if table_suffix(p) else p.name
            for p in (path, *path.parents)
        ]
    kept: list[str] = []
    for part in parts:
        slug = re.sub(r"[^a-z0-9]+", "-", part.lower()).strip("-")
        if not slug or re.fullmatch(r"[0-9-]+", slug):  # a dated night's folder: look above it
            continue
        kept.insert(0, slug)
        if slug not in GENERIC_FOLDERS:
            break
    return "-".join(kept)


def open_source(
    src: str | Path, encoding: str | None = None, labels: dict[str, tuple[str, ...]] | None = None
) -> Source:
    """A database URL (contains '://') or a folder of files (text in `encoding`, `labels` of
    Parquet files as categoricals)."""
    text = str(src)
    if "://" in text:
        return SqlSource(text)
    path = Path(src)
    if not path.exists():
        raise SourceError(f"{path}: no such folder")
    if not path.is_dir():
        raise SourceError(f"{path}: expected a folder of table files or a database URL")
    return FolderSource(path, encoding, labels)


@dataclass
class Export:
    """Contract-named tables read from a source (not yet validated), with notes on what was skipped."""

    tables: CrmTables
    source: str
    notes: list[str] = field(default_factory=list)


def read_export(
    src: str | Path, mapping: Mapping | str | Path | None = None, labels: bool = False
) -> Export:
    """Read an export; with a mapping, translate it into the contract tables first. With
    `labels`, the contract's LABEL_COLUMNS of Parquet files come as categoricals (scoring's
    choice: a fraction of the memory; validation keeps them so).

    An empty mapping ("") means none, as MLproject parameters cannot be left out."""
    given = mapping is not None and mapping != ""
    if given and not isinstance(mapping, Mapping):
        mapping = load_mapping(mapping)  # type: ignore[arg-type]  # a str or Path, by the test
    encoding = mapping.encoding if isinstance(mapping, Mapping) else None
    # Only files already in the contract's shape: a mapping reads raw columns by other names.
    source = open_source(src, encoding, LABEL_COLUMNS if labels and not given else None)
    cache: dict[str, pd.DataFrame | None] = {}

    def read(name: str) -> pd.DataFrame | None:
        if name not in cache:
            cache[name] = source.read(name)
        return cache[name]

    def unreadable() -> ContractError:
        """The files that are no tables (ragged rows, a repeated column) as a broken contract."""
        return ContractError(ValidationReport(tuple(source.issues)), source.description)

    if not isinstance(mapping, Mapping):
        frames = {name: frame for name in TABLE_NAMES if (frame := read(name)) is not None}
        notes = []
    else:
        try:
            result = apply_mapping(mapping, read)
        except DealscoreError as exc:
            if source.issues:  # a broken file, not the mapping, is the first thing to fix
                raise unreadable() from exc
            raise
        frames, notes = result.frames, result.notes
    if source.issues:
        raise unreadable()
    notes = [*source.notes, *notes]
    if "opportunities" not in frames:
        found = ", ".join(source.names()) or "nothing"
        hint = "" if mapping is not None else " (for a raw CRM export, pass --mapping)"
        raise SourceError(
            f"{source.description}: no opportunities table found{hint}; found: {found}"
        )
    return Export(CrmTables.from_dict(frames), source.description, notes)


def read_valid(
    src: str | Path, mapping: Mapping | str | Path | None = None, progress: Progress = silent
) -> CrmTables:
    """An export read (through the mapping) and validated, or a ContractError listing every
    error; an export with no readable creation date at all (a header only, say) is one
    UndatedExportError instead. Only the validated copy is kept: the raw one would double the
    memory."""
    progress(f"reading {redact(str(src))}")
    export = read_export(src, mapping)
    tables, report = validate_tables(export.tables)
    require_dated(tables, report)
    if not report.ok:
        raise ContractError(report, export.source)
    return tables

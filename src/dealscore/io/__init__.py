"""Read exports (files, SQL) through column mappings; write contract tables."""

from dealscore.io.mapping import Mapping, MappingError, load_mapping
from dealscore.io.read import Export, SourceError, open_source, read_export, read_valid
from dealscore.io.write import write_frame, write_tables

__all__ = [
    "Export",
    "Mapping",
    "MappingError",
    "SourceError",
    "load_mapping",
    "open_source",
    "read_export",
    "read_valid",
    "write_frame",
    "write_tables",
]

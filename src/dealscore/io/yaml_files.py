"""Small YAML files people write (mappings, the ICP), read safely: UTF-8 text of a bounded size,
no aliases (a few KB of nested ones expand to gigabytes), keys that are plain values and given
once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1_000_000  # the presets are a few KB; a file this size is a mistake


def read_text(path: Path, what: str, max_bytes: int = MAX_BYTES) -> str:
    """The file's UTF-8 text; ValueError saying what is wrong with it otherwise."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(
            f"{size:,} bytes, more than {what} needs (at most {max_bytes:,}); is it the right "
            "file, not the export itself?"
        )
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def load(text: str, what: str) -> Any:
    """Parsed YAML, refusing aliases, non-scalar keys and repeated keys (yaml.YAMLError)."""

    class Loader(_StrictLoader):
        subject = what

    return yaml.load(text, Loader=Loader)  # a SafeLoader subclass: safe


class _StrictLoader(yaml.SafeLoader):
    subject = "a file"

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None,
                None,
                f"{self.subject} may not use YAML aliases (*name): write each value out",
                self.peek_event().start_mark,
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    "a key must be a plain name, not a list or a mapping",
                    key_node.start_mark,
                )
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

"""The feature catalogue: every feature's name, family, meaning and source tables."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Feature:
    name: str
    family: str
    description: str
    sources: tuple[str, ...]


def family(name: str, sources: tuple[str, ...], **features: str) -> list[Feature]:
    """Declare a family's features as name=description keywords."""
    return [
        Feature(feature, name, description, sources) for feature, description in features.items()
    ]

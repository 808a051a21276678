"""Made-up names for accounts and people, so reports read like a CRM. Drawn from the index, not
from the random generator: adding them left every generated number as it was."""

from __future__ import annotations

import numpy as np


def _words(text: str) -> np.ndarray:
    return np.array(text.split())


FIRST = _words(
    "Ada Ben Carla Dev Elena Farid Grace Hugo Ines Jonas Kira Liam Maya Nils Olga Priya Quinn "
    "Rosa Sam Tara Umar Vera Wes Xin Yusuf Zoe"
)
LAST = _words(
    "Adler Brandt Costa Duarte Evans Fischer Garcia Haas Ivanova Jensen Kowalski Lindqvist "
    "Moreau Nakamura Okafor Petrov Quiroga Rossi Schmidt Tanaka Varga Weber Yilmaz Zhang"
)
STEMS = _words(
    "Acme Alder Atlas Beacon Birch Boreal Cedar Cobalt Copper Delta Ember Falcon Fjord Garnet "
    "Granite Harbor Helix Iris Jasper Juniper Kestrel Lark Lumen Maple Meridian Nimbus Nova Oak "
    "Onyx Orchid Pioneer Polar Quartz Raven Ridge Sable Sierra Summit Tidal Topaz Umber Vale "
    "Vertex Willow Zenith"
)
KINDS = _words(
    "Systems Labs Logistics Health Foods Energy Partners Retail Capital Media Works Group "
    "Analytics Robotics Insurance Pharma Motors Freight Telecom Bank"
)


def people(n: int) -> np.ndarray:
    """'Ada Adler', 'Ben Brandt', ...: first name and surname step together, so neighbours
    differ in both; the pairs repeat only after lcm(26, 24) = 312 people."""
    i = np.arange(n)
    cycle = np.lcm(len(FIRST), len(LAST))
    last = LAST[(i + i // cycle) % len(LAST)]
    return np.char.add(np.char.add(FIRST[i % len(FIRST)], " "), last)


def companies(n: int) -> np.ndarray:
    """'Acme Systems', ..., then 'Acme Systems 2' once the 900 pairs run out: names stay
    unique."""
    i = np.arange(n)
    pairs = len(STEMS) * len(KINDS)
    base = np.char.add(
        np.char.add(STEMS[i % len(STEMS)], " "), KINDS[(i // len(STEMS)) % len(KINDS)]
    )
    round_ = i // pairs
    suffix = np.where(round_ > 0, np.char.add(" ", (round_ + 1).astype(str)), "")
    return np.char.add(base, suffix)

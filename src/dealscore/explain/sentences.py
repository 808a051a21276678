"""Reasons in a seller's words: "in Proposal for 40 days; won deals: 12".

Each sentence names the real stage, category or value, and where it helps compares it with what
deals that went on to win looked like at the same stage (`won_profile`, learned from the
training rows). Templates are neutral: whether the fact raised or lowered the score is the
factor's side. Vectorised: one string operation per (feature, template), not per deal.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from dealscore.explain.wording import (
    CHANGES,
    DESCRIPTIONS,
    FLAGS,
    MISSING,
    SIGNED_SHARES,
    TEMPLATES,
)
from dealscore.features.forecast import CATEGORY_RANK
from dealscore.formatting import money_texts

SENIORITY = np.array(
    ["an individual contributor", "a manager", "a director", "a VP", "an executive"]
)
CATEGORY = {rank: name.replace("_", " ") for name, rank in CATEGORY_RANK.items()}
ANY_STAGE = -1  # the won profile's row for deals whose stage is not known


def _format(values: np.ndarray, kind: str) -> pd.Series:
    v = pd.Series(values, dtype=float)
    if kind in ("days", "count"):
        whole = v.round().astype("Int64")
        text = whole.astype(str)
        big = (whole.abs() >= 1000).fillna(False).to_numpy()
        if big.any():  # thousands separators, formatted only where there are thousands
            text[big] = whole[big].map("{:,}".format)
        return text
    if kind == "percent":
        return (v * 100).round().astype("Int64").astype("str") + "%"
    if kind == "ratio":
        return v.round(1).map("{:g}x".format, na_action="ignore")
    if kind == "pct_change":
        return (v * 100).round().astype("Int64").map("{:+d}%".format, na_action="ignore")
    if kind == "money":
        return money_texts(10**v - 1)  # amounts are features as log10(1 + amount)
    if kind == "signed":
        return v.round().astype("Int64").map("{:+d}".format, na_action="ignore")
    if kind == "seniority":
        return pd.Series(SENIORITY[np.clip(np.round(v.fillna(0)), 0, 4).astype(int)])
    if kind == "category":
        return v.round().map(CATEGORY).fillna("no call")
    return v.round(1).map("{:g}".format, na_action="ignore")


def won_profile(features: pd.DataFrame, won: np.ndarray) -> pd.DataFrame:
    """What deals that went on to win looked like, per stage rank: the median of each feature
    (the share for yes/no facts) over training rows labelled won; row ANY_STAGE: all stages."""
    rows = features.loc[np.asarray(won, dtype=bool)]
    names = [n for n in DESCRIPTIONS if n in rows]
    flags = [n for n in names if n in FLAGS]
    medians = [n for n in names if n not in FLAGS]
    stage = rows["stage_rank"].fillna(ANY_STAGE).astype(int) if "stage_rank" in rows else None

    def profile(part: pd.DataFrame) -> pd.Series:
        return pd.concat([part[medians].median(), part[flags].mean()])

    table = {ANY_STAGE: profile(rows)}
    if stage is not None:
        for rank, part in rows.groupby(stage.to_numpy()):
            if len(part) >= 20 and rank != ANY_STAGE:  # fewer: too few won deals to say
                table[int(rank)] = profile(part)
    return pd.DataFrame(table).T.sort_index()


def _won_values(profile: pd.DataFrame | None, name: str, stage_rank: np.ndarray) -> np.ndarray:
    if profile is None or name not in profile:
        return np.full(len(stage_rank), np.nan)
    column = profile[name]
    fallback = column.get(ANY_STAGE, np.nan)
    ranks = np.nan_to_num(stage_rank, nan=ANY_STAGE).astype(int)
    return column.reindex(ranks).fillna(fallback).to_numpy(dtype=float)


def _fill(template: str, value: pd.Series, stage: pd.Series, won: pd.Series) -> pd.Series:
    """The template with {v}, {stage} and {won} filled; the comparison dropped where the won
    deals' value is unknown; the counted noun in the singular where {v} is 1 ("1 meeting")."""
    one = (value.astype(str) == "1").to_numpy()
    if one.any() and _singular(template) != template:
        out = _fill_as_written(template, value, stage, won)
        out[one] = _fill_as_written(_singular(template), value[one], stage[one], won[one])
        return out
    return _fill_as_written(template, value, stage, won)


def _fill_as_written(
    template: str, value: pd.Series, stage: pd.Series, won: pd.Series
) -> pd.Series:
    """_fill without the singular: the template split once, its pieces joined column-wise."""
    head, sep, comparison = template.partition("; won")
    columns = {"{v}": value, "{stage}": stage}
    text = np.full(len(value), "", dtype=object)
    for piece in re.split(r"(\{v\}|\{stage\})", head):
        if piece in columns:
            text = text + columns[piece].astype(str).to_numpy(dtype=object)
        elif piece:
            text = text + piece
    out = pd.Series(text, index=value.index, dtype=object)
    if sep:
        has = won.notna().to_numpy()
        left, _, right = (sep + comparison).partition("{won}")
        if has.all():
            out = out + left + won.astype(str).astype(object) + right
        elif has.any():
            out[has] = out[has] + left + won[has].astype(str).astype(object) + right
    return out


def sentences(
    features: np.ndarray,
    values: np.ndarray,
    stage_rank: np.ndarray | None = None,
    stage_names: dict[int, str] | None = None,
    profile: pd.DataFrame | None = None,
) -> np.ndarray:
    """A reason per (feature name, value) pair, None where the feature is None. With each row's
    stage rank, the stage names (rank -> CRM name) and the won profile, sentences name the stage
    and compare with won deals there."""
    named, names = pd.factorize(pd.Series(features, dtype=object))  # None: -1
    codes, texts = sentence_codes(
        named, np.asarray(names, dtype=object), values, stage_rank, stage_names, profile
    )
    out = np.full(len(features), None, dtype=object)
    said = codes >= 0
    out[said] = texts[codes[said]]
    return out


def sentence_codes(
    named: np.ndarray,
    names: np.ndarray,
    values: np.ndarray,
    stage_rank: np.ndarray | None = None,
    stage_names: dict[int, str] | None = None,
    profile: pd.DataFrame | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`sentences` of the features `names[named]` (-1: none) as (each row's position in the
    texts, -1 where it has no feature; the distinct texts): a million rows share a few thousand
    sentences, so no string is made per row."""
    codes = np.full(len(named), -1, dtype=np.int64)
    texts: list[np.ndarray] = []
    written = 0  # texts so far: the next text's code
    ranks = np.full(len(named), np.nan) if stage_rank is None else np.asarray(stage_rank, float)
    order = np.argsort(named, kind="stable")
    bounds = np.searchsorted(named[order], np.arange(len(names) + 1))
    for k, name in enumerate(map(str, names)):
        at = order[bounds[k] : bounds[k + 1]]
        known = ~np.isnan(values[at])
        if not known.all():
            codes[at[~known]] = written
            texts.append(
                np.array([MISSING.get(name, f"{DESCRIPTIONS.get(name, name)}: not known")])
            )
            written += 1
        at = at[known]
        if not len(at):
            continue
        value = _shown_value(name, values[at])
        # Many rows say the same thing ("3 people engaged" in Proposal): write each distinct
        # (shown value, stage) once, then hand it to every row that shares it.
        stage_key = np.nan_to_num(ranks[at], nan=-1.0)
        pair, _ = pd.factorize(value + 1j * stage_key)  # one hashable number per pair
        first = np.unique(pair, return_index=True)[1]
        one = at[first]
        codes[at] = written + pair
        written += len(first)
        texts.append(
            _sentence(
                name,
                value[first],
                _stage_text(ranks[one], stage_names or {}),
                _won_values(profile, name, ranks[one]),
            )
        )
    return codes, np.concatenate(texts) if texts else np.empty(0, dtype=object)


def _template(name: str) -> tuple[str, str]:
    """(template, format) of a plain feature; one without a template: its description."""
    return TEMPLATES.get(name, (f"{DESCRIPTIONS.get(name, name)}: {{v}}", "number"))


def _shown_value(name: str, value: np.ndarray) -> np.ndarray:
    """The value as precise as its sentence shows it: rows that round alike read alike."""
    if name in FLAGS:
        return (value >= 0.5).astype(float)
    if name in CHANGES:
        return np.round(value)
    kind = "percent" if name in SIGNED_SHARES else _template(name)[1]
    if kind in ("percent", "pct_change"):
        return np.round(value * 100) / 100
    if kind == "ratio":
        return np.round(value * 10) / 10
    if kind in ("money", "number"):
        return value  # formatted to significant figures: every row on its own
    return np.round(value)


def _stage_text(ranks: np.ndarray, stage_names: dict[int, str]) -> pd.Series:
    """The CRM's name for each row's stage rank ("Proposal"), or "its current stage"."""
    shown = {float(r): str(n).replace("_", " ").capitalize() for r, n in stage_names.items()}
    return pd.Series(ranks).map(shown).astype(object).fillna("its current stage")


def _sentence(name: str, value: np.ndarray, stage: pd.Series, won: np.ndarray) -> np.ndarray:
    index = pd.RangeIndex(len(value))
    stage = stage.reset_index(drop=True)
    if name in FLAGS:
        yes, no = FLAGS[name]
        share = _format(won, "percent").where(~np.isnan(won))
        on = value >= 0.5
        text = pd.Series("", index=index, dtype=object)
        for mask, template in ((on, yes), (~on, no)):
            if mask.any():
                part = _fill(template, pd.Series("", index=index[mask]), stage[mask], share[mask])
                text[mask] = part
        return text.to_numpy(dtype=object)
    if name in CHANGES:
        up, down, same = CHANGES[name]
        rounded = np.round(value)
        shown = _format(np.abs(rounded), "count")
        text = pd.Series(same, index=index, dtype=object)
        for mask, template in ((rounded > 0, up), (rounded < 0, down)):
            if mask.any():
                text[mask] = _fill(template, shown[mask], stage[mask], shown[mask])
        return text.to_numpy(dtype=object)
    if name in SIGNED_SHARES:
        before, after = SIGNED_SHARES[name]
        side = np.where(value >= 0, " above", " below")
        return (before + _format(np.abs(value), "percent") + side + after).to_numpy(dtype=object)
    template, kind = _template(name)
    shown = _format(value, kind)
    known = ~np.isnan(won)
    compared = _format(won, kind).where(known) if known.any() else pd.Series(np.nan, index=index)
    return _fill(template, shown, stage, compared).to_numpy(dtype=object)


PLURALS = {
    "activities": "activity",
    "people": "person",
    "days": "day",
    "times": "time",
    "levels": "level",
    **{f"{kind}s": kind for kind in ("email", "call", "meeting", "demo")},
}


def _singular(template: str) -> str:
    """The template with the noun right after {v} in the singular ("{v} meetings" -> "{v} meeting")."""
    return re.sub(r"\{v\} (\w+)", lambda m: "{v} " + PLURALS.get(m[1], m[1]), template, count=1)

"""Column mappings: each transformation a real export needs."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from dealscore.errors import InputError
from dealscore.io.icp import load_icp
from dealscore.io.mapping import Mapping, MappingError, apply_mapping, load_mapping


def run(spec: str, sources: dict[str, pd.DataFrame]):
    mapping = Mapping.parse(yaml.safe_load(spec))
    return apply_mapping(mapping, sources.get)


def test_rename_value_map_coalesce_default_and_scale():
    # given
    raw = pd.DataFrame(
        {
            "Id": ["1", "2", "3"],
            "Stage": ["Closed Won", "closed lost", None],
            "Done": [None, "2025-02-01", None],
            "Made": ["2025-01-01", "2025-01-15", None],
            "Pct": ["50", "100", None],
        }
    )
    spec = """
    tables:
      opportunities:
        source: Opp
        columns:
          opportunity_id: Id
          status: {from: Stage, values: {Closed Won: won, Closed Lost: lost}, default: open}
          created_at: {from: [Done, Made], default: "2025-03-01"}
          win_chance: {from: Pct, scale: 0.01}
    """
    # when
    out = run(spec, {"Opp": raw}).frames["opportunities"]
    # then
    assert out["status"].tolist() == ["won", "lost", "open"]
    assert out["created_at"].tolist() == ["2025-01-01", "2025-02-01", "2025-03-01"]
    assert out["win_chance"].tolist()[:2] == [0.5, 1.0]


def test_status_from_flags_first_rule_wins():
    raw = pd.DataFrame(
        {
            "IsWon": ["true", "false", "false", "0"],
            "IsClosed": ["true", "TRUE", "1", "false"],
            "StageName": ["Won", "No Decision", "Lost", "Open"],
        }
    )
    spec = """
    tables:
      opportunities:
        source: O
        columns:
          status:
            when:
              - {if: {IsWon: true}, then: won}
              - {if: {IsClosed: true, StageName: [No Decision]}, then: no_decision}
              - {if: {IsClosed: true}, then: lost}
            else: open
          closed_flag: {from: StageName, only_if: {IsClosed: true}}
    """
    out = run(spec, {"O": raw}).frames["opportunities"]
    assert out["status"].tolist() == ["won", "no_decision", "lost", "open"]
    assert out["closed_flag"].isna().tolist() == [False, False, False, True]


def test_unmapped_values_pass_through_or_take_other():
    raw = pd.DataFrame({"T": ["Email", "Carrier pigeon", None]})
    spec = """
    tables:
      activities:
        source: A
        columns:
          type: {from: T, values: {Email: email}}
          kind: {from: T, values: {Email: email}, other: other}
    """
    out = run(spec, {"A": raw}).frames["activities"]
    assert out["type"].tolist()[:2] == ["email", "Carrier pigeon"]  # the contract will reject it
    assert out["kind"].tolist()[:2] == ["email", "other"] and pd.isna(out["kind"].iloc[2])


def test_patterns_classify_and_match_filters():
    raw = pd.DataFrame(
        {
            "Title": ["Chief Revenue Officer", "VP Sales", "IT Director", "Analyst", None],
            "What": ["006A", "001B", "006C", None, "xyz"],
        }
    )
    spec = r"""
    tables:
      contacts:
        source: C
        columns:
          seniority:
            from: Title
            patterns: {executive: "(?i)chief", vp: "(?i)\\bvp\\b", director: "(?i)director"}
            other: individual
          opportunity_id: {from: What, match: "^006"}
    """
    out = run(spec, {"C": raw}).frames["contacts"]
    assert out["seniority"].tolist()[:4] == ["executive", "vp", "director", "individual"]
    assert pd.isna(out["seniority"].iloc[4])
    assert out["opportunity_id"].isna().tolist() == [False, True, False, True, True]
    assert out["opportunity_id"].dropna().tolist() == ["006A", "006C"]


def test_dates_with_format_and_source_timezone():
    raw = pd.DataFrame({"When": ["03/15/2025 09:00", "not a date"]})
    spec = """
    tables:
      activities:
        source: A
        columns:
          occurred_at: {from: When, format: "%m/%d/%Y %H:%M", timezone: America/New_York}
    """
    out = run(spec, {"A": raw}).frames["activities"]["occurred_at"]
    assert out.iloc[0] == pd.Timestamp("2025-03-15 13:00", tz="UTC")
    assert out.iloc[1] == "not a date"  # kept for the contract's parse report


def test_join_lookup_after_cleaning():
    pipeline = pd.DataFrame({"product": ["GTXPro", "MG Special", "Unknown"]})
    products = pd.DataFrame({"product": ["GTX Pro", "MG Special"], "sales_price": ["4821", "55"]})
    spec = """
    tables:
      opportunities:
        source: pipeline
        clean: {product: {GTXPro: GTX Pro}}
        join: [{source: products, key: product, columns: [sales_price]}]
        columns: {product: product, amount: sales_price}
    """
    out = run(spec, {"pipeline": pipeline, "products": products}).frames["opportunities"]
    assert out["product"].tolist()[:2] == ["GTX Pro", "MG Special"]
    assert out["amount"].tolist()[:2] == ["4821", "55"] and pd.isna(out["amount"].iloc[2])


def test_join_with_duplicate_lookup_keys_is_refused():
    spec = """
    tables:
      opportunities:
        source: p
        join: [{source: lookup, key: k}]
        columns: {opportunity_id: k}
    """
    with pytest.raises(MappingError, match="not unique"):
        run(spec, {"p": pd.DataFrame({"k": ["a"]}), "lookup": pd.DataFrame({"k": ["a", "a"]})})


def test_several_sources_are_concatenated_and_missing_ones_noted():
    spec = """
    tables:
      activities:
        - {source: Task, columns: {occurred_at: D, type: {value: call}}}
        - {source: Event, columns: {occurred_at: D, type: {value: meeting}}}
        - {source: Nowhere, columns: {occurred_at: D}}
    """
    result = run(
        spec,
        {"Task": pd.DataFrame({"D": ["2025-01-01"]}), "Event": pd.DataFrame({"D": ["2025-01-02"]})},
    )
    assert result.frames["activities"]["type"].tolist() == ["call", "meeting"]
    assert any("Nowhere" in note for note in result.notes)


def test_missing_optional_source_column_is_noted_required_one_fails():
    frame = pd.DataFrame({"Id": ["1"]})
    optional = "tables: {opportunities: {source: O, columns: {opportunity_id: Id, loss_reason: Loss_Reason__c}}}"
    result = run(optional, {"O": frame})
    assert "loss_reason" not in result.frames["opportunities"]
    assert any("Loss_Reason__c" in note for note in result.notes)
    required = "tables: {opportunities: {source: O, columns: {opportunity_id: Oops}}}"
    with pytest.raises(MappingError, match=r"Oops.*required"):
        run(required, {"O": frame})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("columns: {}", "top-level 'tables:'"),
        ("tables: {deals: {source: x}}", "unknown contract table"),
        ("tables: {opportunities: {columns: {}}}", "needs a 'source'"),
        (
            "tables: {opportunities: {source: x, columns: {status: {from: a, valuez: {}}}}}",
            "unknown key",
        ),
        (
            "tables: {opportunities: {source: x, columns: {status: {from: a, value: b}}}}",
            "exactly one",
        ),
        (
            "tables: {opportunities: {source: x, columns: {status: {from: a, match: '('}}}}",
            "regular expression",
        ),
        # values of the wrong shape (issue 14): each is one clear line, not a traceback
        (
            "tables: {opportunities: {source: x, columns: {status: {from: a, values: [a, b]}}}}",
            r"status\.values: expected a mapping of from: to",
        ),
        (
            "tables: {opportunities: {source: x, clean: {a: b}, columns: {}}}",
            r"clean: each column maps values to fixes",
        ),
        (
            "tables: {opportunities: {source: x, columns: {status: {when: [x, y]}}}}",
            r"status\.when: expected a list of \{if:",
        ),
        (
            "tables: {opportunities: {source: x, join: {source: y, key: {}}, columns: {}}}",
            "a join key is a column name",
        ),
        (
            "tables: {opportunities: {source: x, columns: {created_at: {from: a, timezone: Mars/Base}}}}",
            "unknown time zone 'Mars/Base'",
        ),
        (
            "tables: {opportunities: {source: x, columns: {created_at: {from: a, format: '%Q'}}}}",
            "bad date format",
        ),
        ("tables: {opportunities: {source: x, columns: {}}}\ntabels: {}", "unknown top-level key"),
        (
            "tables: {opportunities: {source: x, columns: {}}}\nencoding: klingon",
            "unknown encoding",
        ),
    ],
)
def test_bad_mappings_are_explained(spec, message):
    with pytest.raises(MappingError, match=message):
        Mapping.parse(yaml.safe_load(spec))


def test_presets_and_files_load(tmp_path):
    assert set(load_mapping("salesforce").tables) == {
        "opportunities",
        "accounts",
        "stage_history",
        "activities",
        "contacts",
        "forecasts",
        "owners",
    }
    with pytest.raises(MappingError, match="neither a preset"):
        load_mapping(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tables: [")
    with pytest.raises(MappingError, match="not valid YAML"):
        load_mapping(bad)
    twice = tmp_path / "twice.yaml"
    twice.write_text(
        "tables:\n  opportunities: {source: a, columns: {}}\n  opportunities: {source: b}\n"
    )
    with pytest.raises(MappingError, match="duplicate key 'opportunities'"):
        load_mapping(twice)


LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + k)}: &{chr(98 + k)} [{', '.join([f'*{chr(97 + k)}'] * 9)}]\n" for k in range(8)
)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (LAUGHS.encode(), "may not use YAML aliases"),  # "billion laughs": 9^9 items if expanded
        ("name: caf\u00e9\n".encode("latin-1"), "not UTF-8 text"),
        (b"? [opportunities, accounts]\n: x\n", "a key must be a plain name"),
        (b"# padding\n" * 120_000, "more than a mapping needs"),
    ],
    ids=["aliases", "not-utf8", "list-key", "oversized"],
)
def test_a_hostile_or_broken_mapping_file_is_one_clear_error(tmp_path, content, message):
    # given a mapping file built to exhaust memory, or not text, or shaped wrongly
    path = tmp_path / "mapping.yaml"
    path.write_bytes(content)
    # when it is loaded, then it is refused at once with what is wrong
    with pytest.raises(MappingError, match=message):
        load_mapping(path)


def test_an_icp_file_is_read_as_safely_as_a_mapping(tmp_path):
    # given an ICP file using an alias (nested ones are the "billion laughs")
    path = tmp_path / "icp.yaml"
    path.write_text("regions: &r [emea]\nrules:\n  - {name: r, column: region, in: *r}\n")
    # when it is loaded, then it is refused, as a mapping would be
    with pytest.raises(InputError, match="may not use YAML aliases"):
        load_icp(path)

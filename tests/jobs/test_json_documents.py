"""`--json`: one JSON document on stdout per command, in the shape docs/json/ keeps."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dealscore.cli import app
from dealscore.documents import plain

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "json"
AS_OF = "2026-05-01"  # before the generated export's date (2026-06-01)
runner = CliRunner()


def document(command: str, args: list[str], exit_code: int = 0) -> dict:
    """Runs `dealscore COMMAND ARGS --json`; its stdout must be one document of its schema."""
    result = runner.invoke(app, [command, *args, "--json"])
    assert result.exit_code == exit_code, result.output + result.stderr
    doc = json.loads(result.stdout)  # nothing else on stdout: progress goes to stderr
    schema = json.loads((SCHEMAS / f"{command}.schema.json").read_text())
    jsonschema.validate(doc, schema)
    return doc


def test_train_and_score_say_what_they_did_in_their_schema(crm, tmp_path):
    # given a quick recipe and a fresh model name
    config = tmp_path / "train.toml"
    config.write_text(
        'ladder = ["base_rate", "logistic_regression"]\nicp = ""\nforward_dates = 1\n'
        'registered_model = "json-doc"\n'
    )
    # when it trains with --json
    trained = document("train", ["--data", str(crm), "--config", str(config)])
    # then the document names the rung, the contenders and the registered version
    assert trained["model"]["rung"] in ("base_rate", "logistic_regression")
    assert {"model", "base_rate"} <= {row["contender"] for row in trained["comparison"]}
    assert trained["tracking"]["version"] == "1" and trained["tracking"]["role"] == "champion"
    assert trained["forward"]["table"] and trained["horizon_days"] > 0
    # when that champion scores with --json
    out = f"sqlite:///{tmp_path / 'scores.db'}"
    scored = document(
        "score",
        [
            "--data",
            str(crm),
            "--as-of",
            AS_OF,
            "--out",
            out,
            "--model",
            "models:/json-doc@champion",
        ],
    )
    # then the counts are what was written, and they add up
    written = pd.read_sql_table("scores", out)
    assert scored["scored"] == len(written) > 0
    assert scored["open_deals"] == scored["scored"] + scored["rejected"]
    assert sum(band["deals"] for band in scored["bands"].values()) == scored["scored"]
    assert scored["model"]["name"] == "json-doc" and scored["model"]["version"] == "1"
    assert scored["trends"] == {"new": scored["scored"]}
    assert scored["as_of"].startswith(AS_OF) and scored["destination"].endswith("scores.db")
    # and how those scores turned out reads the same way
    watched = document("monitor", ["--data", str(crm), "--scores", out, "--model-name", "json-doc"])
    assert sum(watched["counts"].values()) == len(written)


def test_validate_lists_every_broken_rule_and_still_exits_1(tables, tmp_path):
    # given an export with a deal in a status the contract does not know
    broken = tables.opportunities.assign(status=["won", "lost", "pending"])
    broken.to_csv(tmp_path / "opportunities.csv", index=False)
    # when it is validated with --json
    doc = document("validate", [str(tmp_path)], exit_code=1)
    # then the document says invalid and names the table, column, count and example
    assert doc["valid"] is False
    (error,) = [e for e in doc["errors"] if e["column"] == "status"]
    assert error["table"] == "opportunities" and error["count"] == 1
    assert "pending" in " ".join(error["examples"])


def test_a_failure_is_a_document_too(tmp_path):
    # when a command cannot run (no model for this export)
    doc = document("score", ["--data", str(tmp_path / "nowhere")], exit_code=2)
    # then stdout still holds one document, saying why and with the exit code
    assert doc["exit_code"] == 2 and "model" in doc["error"]


def test_plain_values_are_json_values():
    # given what results hold: NumPy numbers, missing values, times, frames
    value = {
        "n": np.int64(3),
        "x": np.float32(0.5),
        "gap": np.nan,
        "when": pd.Timestamp("2026-01-02", tz="UTC"),
        "never": pd.NaT,
        "rows": pd.DataFrame({"a": [1, 2], "b": [np.nan, 0.25]}),
        "flag": np.bool_(True),
    }
    # then each becomes its JSON counterpart, and NaN is never written
    assert json.loads(json.dumps(plain(value), allow_nan=False)) == {
        "n": 3,
        "x": 0.5,
        "gap": None,
        "when": "2026-01-02T00:00:00+00:00",
        "never": None,
        "rows": [{"a": 1, "b": None}, {"a": 2, "b": 0.25}],
        "flag": True,
    }


@pytest.mark.parametrize("name", sorted(p.name for p in SCHEMAS.glob("*.schema.json")))
def test_every_schema_is_a_valid_json_schema(name):
    jsonschema.Draft202012Validator.check_schema(json.loads((SCHEMAS / name).read_text()))

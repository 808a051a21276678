"""The ops report: one self-contained page, checked in a real headless browser."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dealscore.cli import app
from dealscore.features.asof import export_time, last_event, tables_as_of
from dealscore.formatting import ago, money
from dealscore.io import read_export, write_tables
from dealscore.jobs.report import code_fingerprint, run_report
from dealscore.jobs.score import ScoreSettings, run_score
from dealscore.jobs.train import run_train
from dealscore.pipeline.training import TrainSettings
from dealscore.tracking.pyfunc import PACKAGE_DIR

FAST_REPORT = TrainSettings(n_estimators=60, learning_rate=0.1, icp="", track=False)


def money_value(text: str) -> float:
    """'USD 1.2M' -> 1200000.0."""
    number = text.split()[-1]
    scale = {"k": 1e3, "M": 1e6}.get(number[-1], 1.0)
    return float(number.rstrip("kM")) * scale


def _browser() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        message = "no chromium to render the report: apt-get install chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def trained_store(crm, tmp_path_factory) -> tuple[Path, str]:
    """A store whose champion was trained on `crm` under its default name (one per CRM)."""
    folder = tmp_path_factory.mktemp("report")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        run_train(
            crm,
            TrainSettings(
                n_estimators=60, learning_rate=0.1, icp="", tracking_uri=uri, forward_dates=1
            ),
        )
    return folder, uri


FAST_CONFIG = 'n_estimators = 60\nlearning_rate = 0.1\nicp = ""\ntrack = false\n'


def _report(data: Path, folder: Path, uri: str, *extra: str):
    config = folder / "fast.toml"
    config.write_text(FAST_CONFIG)
    return CliRunner().invoke(
        app,
        [
            "report",
            "--data",
            str(data),
            "--config",
            str(config),
            "--tracking-uri",
            uri,
            "--currency",
            "USD",
            *extra,
        ],
    )


WRITTEN_NIGHTS = ("2025-12-01", "2026-05-25")  # one judged by the export's outcomes, one not


@pytest.fixture(scope="module")
def report(crm, trained_store) -> Path:
    folder, uri = trained_store
    # scores written on past nights, as the nightly job keeps them
    written = ScoreSettings(out=str(folder / "scores"), tracking_uri=uri, track=False)
    model = f"models:/dealscore-{crm.name}@champion"
    for night in WRITTEN_NIGHTS:
        run_score(crm, replace(written, model=model), pd.Timestamp(night, tz="UTC"))
    # no --model: the champion of this export's own CRM
    result = _report(
        crm,
        folder,
        uri,
        *("--out", str(folder / "report.html"), "--periods", "2"),
        *("--scores", written.out),
    )
    assert result.exit_code == 0, result.output
    return folder / "report.html"


def _text(page: str) -> str:
    """What a reader sees: tags and embedded images gone, whitespace collapsed."""
    page = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.DOTALL)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def _table(page: str, css: str) -> list[list[str]]:
    """The cells of the table with that class, row by row."""
    body = page.split(f'<table class="{css}">', 1)[1].split("</table>", 1)[0]
    return [
        [_text(cell).strip() for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.DOTALL)]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.DOTALL)
    ]


def test_the_page_is_self_contained(report):
    page = report.read_text()
    text = _text(page)
    # the questions in the order a sales manager asks them
    order = [
        "This quarter so far",
        "Past quarters: the model against the reps, week by week",
        "Deals to act on",
        "Open pipeline by band",
        "Can the probabilities be trusted?",
        "How the scores we wrote did",
        "No next step booked",
        "Drifting into no decision",
    ]
    positions = [text.index(title) for title in order]
    assert positions == sorted(positions)
    # what a probability means, which rung of the ladder scores and why, and its forward test
    assert re.search(r"P\(won within \d+ days\)", text)
    assert re.search(r"Scored by the \w+ rung of the model ladder \(.*out-of-fold log loss", text)
    assert 'class="forward"' in page and "pooled" in page
    # nothing fetched from anywhere: every image is inline, no external script or style
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert page.count('src="data:image/png;base64,') == 4
    # never a "nan", and amounts carry the currency and no false precision
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)
    assert re.search(r"USD \d+(\.\d+)?[kM]", text) and not re.search(r"\d{7}", text)


def test_this_quarter_sets_the_model_beside_the_reps_and_what_is_booked(report, crm):
    # given the export's own booked deals this quarter
    tables = read_export(crm).tables
    now = export_time(last_event(tables))
    start = pd.Period(now.tz_localize(None), freq="Q").start_time.tz_localize("UTC")
    deals = tables.opportunities
    won = deals[(deals["status"] == "won") & (deals["closed_at"] >= start)]
    # when the page is read
    rows = _table(report.read_text(), "this-quarter")
    # then every forecast starts from the same booked amount, the reps' numbers included
    assert rows[0] == [
        "forecast",
        "booked so far",
        "from open deals",
        "from deals not yet created",
        "quarter total",
        "range (10th to 90th percentile)",
    ]
    assert [r[0] for r in rows[1:]] == [
        "model",
        "reps: booked + commit",
        "reps: booked + commit + best case",
    ]
    assert {r[1] for r in rows[1:]} == {money(won["amount"].sum(), "USD")}
    model, commit = rows[1], rows[2]
    assert model[4] != commit[4]  # two different calls, not one number twice
    # the model's total has a range around it; the reps' numbers have no new-deal part
    low, high = (money_value(v) for v in model[5].split(" to "))
    assert low <= money_value(model[4]) <= high
    assert commit[3] == "–" and commit[5] == "–"


def test_past_quarters_show_accuracy_week_by_week(report):
    # when the page is read
    page = report.read_text()
    rows = _table(page, "accuracy")
    # then there is one row per week of the replay, the model beside the reps' rollups
    assert rows[0][0] == "week" and "model: forecast / actual" in rows[0]
    assert "reps: booked + commit: forecast / actual" in rows[0]
    assert [r[0] for r in rows[1:]] == ["0", "2", "4", "6", "8", "10", "12"]
    assert all(re.fullmatch(r"\d+ of \d+", r[-1]) for r in rows[1:])
    # and the quarter-by-quarter table shows the parts of the model's number
    history = _table(page, "history")
    assert history[0][:5] == ["quarter", "actual", "booked", "open deals", "not yet created"]
    assert "Past quarters, forecast week by week" in _text(page)


def test_the_deals_to_act_on_name_the_deal_account_owner_and_stage(report, crm):
    tables = read_export(crm).tables
    rows = _table(report.read_text(), "deals")
    header, first = rows[0], rows[1]
    assert header[:6] == ["deal", "account", "owner", "stage", "close date", "amount"]
    # names as the CRM holds them, not ids
    assert first[0] in set(tables.opportunities["name"])
    assert first[1] in set(tables.accounts["name"])
    assert first[2] in set(tables.owners["name"])
    assert first[3] in set(tables.stage_history["stage"])
    # the at-risk list is ordered by what it says: the amount at stake
    stakes = [money_value(r[8]) for r in rows[1:]]
    assert stakes == sorted(stakes, reverse=True) and stakes[0] > 0


def test_bands_are_defined_with_their_amounts(report):
    rows = _table(report.read_text(), "bands")
    assert [r[:2] for r in rows[1:]] == [
        ["A", "70% or more"],
        ["B", "40% to 70%"],
        ["C", "15% to 40%"],
        ["D", "below 15%"],
    ]
    assert "How to read the reliability chart" in _text(report.read_text())


def test_a_short_history_says_so_and_never_shows_nan(crm, trained_store, tmp_path):
    # given the same CRM cut ten months after its first deal: no quarter can be replayed
    folder, uri = trained_store
    tables = read_export(crm).tables
    cut = tables.opportunities["created_at"].min() + pd.Timedelta(days=300)
    short = tmp_path / "short"
    write_tables(tables_as_of(tables, cut), short)
    model = f"models:/dealscore-{crm.name}@champion"  # the CRM's model, scored on its past
    # when the report is written with the default number of quarters
    result = _report(
        short,
        folder,
        uri,
        *("--out", str(tmp_path / "r.html"), "--model", model, "--scores", str(tmp_path / "no")),
    )
    # then it is written, says why there is no history, and has no "nan" or empty chart
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r.html").read_text()
    text = _text(page)
    assert "No past quarter could be replayed" in text
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)
    assert page.count('src="data:image/png;base64,') == 1 and 'data-charts="1"' in page
    assert "report with 1 chart written" in result.output


def test_the_replay_is_cached_per_export_and_settings(crm, trained_store, tmp_path, monkeypatch):
    _, uri = trained_store
    first = run_report(crm, tmp_path / "a.html", 2, tracking_uri=uri, settings=FAST_REPORT)
    assert not first.cached and first.backtest is not None

    def no_replay(*args, **kwargs):
        raise AssertionError("the replay ran again")

    # when the same export and settings are reported again, the replay is not run again
    monkeypatch.setattr("dealscore.jobs.report.backtest", no_replay)
    again = run_report(crm, tmp_path / "b.html", 2, tracking_uri=uri, settings=FAST_REPORT)
    assert again.cached
    pd.testing.assert_frame_equal(again.backtest.forecasts, first.backtest.forecasts)
    assert "Replay reused from the cache" in (tmp_path / "b.html").read_text()
    # but other settings replay (and --no-cache would too)
    with pytest.raises(AssertionError, match="ran again"):
        run_report(crm, tmp_path / "c.html", 3, tracking_uri=uri, settings=FAST_REPORT)
    # and so does other code under the same version (a checkout between releases)
    monkeypatch.setattr("dealscore.jobs.report.code_fingerprint", lambda: "other code")
    with pytest.raises(AssertionError, match="ran again"):
        run_report(crm, tmp_path / "d.html", 2, tracking_uri=uri, settings=FAST_REPORT)


def test_the_code_fingerprint_follows_the_source_not_its_byte_code(tmp_path):
    # given a copy of the package's source
    copy = tmp_path / "dealscore"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = code_fingerprint(copy)
    # when byte code is written beside it, the same; when a module changes, another
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "x.pyc").write_bytes(b"cached")
    assert code_fingerprint.__wrapped__(copy) == before
    (copy / "model" / "estimator.py").write_text("# changed\n", encoding="utf-8")
    assert code_fingerprint.__wrapped__(copy) != before
    # and the installed package has one
    assert len(code_fingerprint()) == 20


def test_a_failed_report_leaves_no_file(crm, tmp_path):
    # given no model for this CRM in a fresh store
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "mlflow.db").touch()
    result = _report(crm, tmp_path, uri, "--out", str(tmp_path / "r.html"))
    # then it fails with the reason, and writes no page (nor half a page)
    assert result.exit_code == 2
    assert f"dealscore-{crm.name}@champion" in result.output
    assert not (tmp_path / "r.html").exists()
    assert not list(tmp_path.glob(".r.html*"))


def test_it_renders_in_a_headless_browser_without_console_errors(report):
    browser = _browser()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    # when the page is opened
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    shot = report.with_suffix(".png")
    logged = subprocess.run(
        [
            browser,
            *flags,
            "--window-size=1200,2600",
            f"--screenshot={shot}",
            "--enable-logging=stderr",
            "--v=0",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # then every chart loaded, the console stayed clean, and a screenshot is there to look at
    assert 'data-charts-loaded="4"' in dom.stdout, dom.stderr[-2000:]
    # with this quarter's table, the reps' numbers in it, the past quarters week by week, and
    # deals named with their owners
    quarter = _table(dom.stdout, "this-quarter")
    assert {"model", "reps: booked + commit"} <= {r[0] for r in quarter[1:]}
    weeks = _table(dom.stdout, "accuracy")
    assert [r[0] for r in weeks[1:]] == ["0", "2", "4", "6", "8", "10", "12"]
    deals = _table(dom.stdout, "deals")
    assert deals[0][:3] == ["deal", "account", "owner"] and len(deals) > 2
    assert "Uncaught" not in logged.stderr and ":CONSOLE(" not in logged.stderr
    assert shot.stat().st_size > 50_000
    print(f"screenshot: {shot}")


def test_the_page_lists_the_deals_with_no_next_step_booked(report):
    page = report.read_text()
    # the generated export says when meetings were booked: the view is there, with deals
    assert "No next step booked" in page
    section = page.split("No next step booked", 1)[1]
    assert re.search(r"[\d,]+ of [\d,]+ open deals \(\d+% of the open amount\)", section)
    assert section.count("<tr>") > 1 and re.search(
        r"<td>(\d[\d,]* days? ago|today|never)</td>", section
    )


def test_days_read_as_people_say_them():
    assert [ago(v) for v in (np.nan, 0.2, 1.4, 12.0, 1500.0)] == [
        "never",
        "today",
        "1 day ago",
        "12 days ago",
        "1,500 days ago",
    ]


def test_the_page_lists_the_deals_drifting_into_no_decision(report):
    section = report.read_text().split("Drifting into no decision", 1)[1]
    assert re.search(r"expects USD [\d.]+[kM]? to end in no decision", _text(section))
    assert 'class="no-decision"' in section and section.count("<tr>") > 1


def test_score_compare_and_report_default_to_the_same_as_of(crm, trained_store, tmp_path):
    # given the export's own time: the second after its latest dated fact
    folder, uri = trained_store
    now = f"{export_time(last_event(read_export(crm).tables)):%Y-%m-%d %H:%M} UTC"
    # when each runs with no --as-of and no --model (the CRM's own champion)
    scored = CliRunner().invoke(
        app,
        ["score", "--data", str(crm), "--tracking-uri", uri, "--out", str(tmp_path / "s")],
    )
    compared = CliRunner().invoke(
        app, ["compare", "--data", str(crm), "--tracking-uri", uri, "--by", "owner"]
    )
    reported = _report(crm, folder, uri, "--out", str(tmp_path / "r.html"), "--periods", "1")
    # then all three use it, and say which model they used
    for result in (scored, compared, reported):
        assert result.exit_code == 0, result.output
    assert f"as of {now}" in scored.output
    assert f"as of {now}" in compared.output
    assert f"As of {now}" in _text((tmp_path / "r.html").read_text())
    model = f"model dealscore-{crm.name} v1 (champion)"
    assert model in scored.output and model in compared.output
    # compare names the owners and ends with the total
    tables = read_export(crm).tables
    lines = compared.output.splitlines()
    assert any(name in compared.output for name in tables.owners["name"])
    assert lines[-1].split()[0] == "total"


def test_compare_says_a_closed_quarter_is_in_sample(crm, trained_store):
    _, uri = trained_store
    result = CliRunner().invoke(
        app, ["compare", "--data", str(crm), "--tracking-uri", uri, "--period", "2026Q1"]
    )
    assert result.exit_code == 0, result.output
    assert "as of 2026-01-01 00:00 UTC, closed: actual known" in result.output
    assert "in-sample" in result.output and "dealscore backtest" in result.output


def _compare_since(crm, uri: str, since: str):
    """compare as of 2026-05-15 (inside 2026Q2), with what moved since `since`."""
    args = ["compare", "--data", str(crm), "--tracking-uri", uri, "--as-of", "2026-05-15"]
    return CliRunner().invoke(app, [*args, "--since", since])


def test_compare_shows_the_whole_number_and_what_moved_since(crm, trained_store):
    _, uri = trained_store
    # when compared as of a date inside a quarter, since a week before
    result = _compare_since(crm, uri, "2026-05-08")
    assert result.exit_code == 0, result.output
    # then the quarter's number is its parts with a range, beside the reps' rollups
    number = re.search(
        r"the quarter's number \(model\): ([\d,]+) = booked ([\d,]+) \+ the [\d,]+ open deals "
        r"([\d,]+) \+ deals not yet created ([\d,]+); 10th to 90th percentile ([\d,]+) to ([\d,]+)",
        result.output,
    )
    assert number, result.output
    total, booked, opened, new, low, high = (int(v.replace(",", "")) for v in number.groups())
    assert abs(total - (booked + opened + new)) <= 2  # each rounded on its own
    assert low <= total <= high
    assert "booked + commit" in result.output
    # and what moved in the pipeline since, with the deals whose probability moved and why
    assert "what moved since 2026-05-08 00:00 UTC" in result.output
    for move in ("won", "lost", "pushed out", "pulled in", "new", "amount changed"):
        assert re.search(rf"^\s+{move}\s+\d+", result.output, re.MULTILINE), move
    assert re.search(r"\d+% -> \d+%: (up|down): ", result.output)
    # and by team, each team's number, with a total that adds the teams' parts up
    args = ["compare", "--data", str(crm), "--tracking-uri", uri, "--as-of", "2026-05-15"]
    by_team = CliRunner().invoke(app, [*args, "--by", "team"])
    assert by_team.exit_code == 0, by_team.output
    table = by_team.output.split("by team:\n", 1)[1].split("what moved since", 1)[0]
    lines = table.splitlines()
    assert lines[0].split()[:6] == ["team", "booked", "open", "not", "yet", "created"]
    models = {line.split()[0]: int(line.split()[4].replace(",", "")) for line in lines[1:]}
    assert len(models) >= 3 and "total" in models
    teams = sum(v for k, v in models.items() if k != "total")
    assert abs(models["total"] - teams) <= len(models)  # each rounded on its own
    # (the booked part is the same however it is split)
    assert int(lines[-1].split()[1].replace(",", "")) == pytest.approx(booked, abs=2)
    # and --since after --as-of is refused
    bad = _compare_since(crm, uri, "2026-05-20")
    assert bad.exit_code == 2 and "--since" in bad.output


def test_the_report_shows_what_moved_this_week(report):
    page = report.read_text()
    rows = _table(page, "moves")
    assert [r[0] for r in rows[1:]] == [
        "won",
        "lost",
        "pushed out",
        "pulled in",
        "new",
        "amount changed",
    ]
    movers = _table(page, "movers")
    assert movers[0] == ["deal", "owner", "amount", "a week ago", "now", "why"]
    assert len(movers) > 1 and re.match(r"(up|down): ", movers[1][5])


def test_the_page_shows_how_the_scores_we_wrote_did(report, crm):
    # given scores written on two nights, the last one too recent for its window to be over
    page = report.read_text()
    text = _text(page)
    written = pd.concat(
        [pd.read_parquet(p) for p in (report.parent / "scores" / "scores").glob("*.parquet")]
    )
    now = export_time(last_event(read_export(crm).tables))
    ended = written["as_of"] + pd.to_timedelta(written["horizon_days"], unit="D") <= now
    # then the section counts them, judges only the elapsed ones, and draws them by month
    assert f"{len(written):,} scores written to" in text
    assert f"{ended.sum():,} have, {(~ended).sum():,} are still pending" in text
    months = _table(page, "written")
    assert [row[0] for row in months[1:]] == ["2025-12", "2026-05"]
    assert months[-1][1:3] == ["0", f"{(~ended).sum():,}"]  # the recent night: pending only
    won = written.loc[ended & (written["as_of"].dt.month == 12)]
    assert months[1][1] == f"{len(won):,}"
    assert 'alt="How the scores we wrote did"' in page

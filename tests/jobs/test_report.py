"""The ops report: one self-contained page, checked in a real headless browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dealscore.cli import app
from dealscore.jobs.report import _days
from dealscore.jobs.train import TrainSettings, run_train


def _browser() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        message = "no chromium to render the report: apt-get install chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def report(crm, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    config = folder / "fast.toml"
    config.write_text('n_estimators = 60\nlearning_rate = 0.1\nicp = ""\ntrack = false\n')
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        run_train(
            crm,
            TrainSettings(
                n_estimators=60, learning_rate=0.1, icp="", tracking_uri=uri, forward_dates=1
            ),
        )
        result = CliRunner().invoke(
            app,
            [
                "report",
                "--data",
                str(crm),
                "--out",
                str(folder / "report.html"),
                "--periods",
                "2",
                "--config",
                str(config),
                "--tracking-uri",
                uri,
            ],
        )
    assert result.exit_code == 0, result.output
    return folder / "report.html"


def test_the_page_is_self_contained(report):
    page = report.read_text()
    assert "Forecast vs reps vs actual" in page and "Most at risk" in page
    assert "Pipeline coverage" in page
    # the champion's forward test, and what its probability means
    assert "How honest the probabilities are (forward test)" in page
    assert re.search(r"P\(won within \d+ days of the as-of date\)", page)
    assert 'class="dataframe forward"' in page and "pooled" in page
    # nothing fetched from anywhere: every image is inline, no external script or style
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert page.count('src="data:image/png;base64,') == 3


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
    assert 'data-charts-loaded="3"' in dom.stdout, dom.stderr[-2000:]
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
    assert [_days(v) for v in (np.nan, 0.2, 1.4, 12.0, 1500.0)] == [
        "never",
        "today",
        "1 day ago",
        "12 days ago",
        "1,500 days ago",
    ]


def test_the_page_lists_the_deals_drifting_into_no_decision(report):
    section = report.read_text().split("Drifting into no decision", 1)[1]
    assert re.search(r"expects [\d,]+ to end in no decision", section)
    assert 'class="no-decision"' in section and section.count("<tr>") > 1

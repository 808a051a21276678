"""Shared fixtures: small, valid CRM exports built through the contract schemas."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from dealscore.features.asof import tables_as_of
from dealscore.model.bundle import LoadedModel
from dealscore.pipeline.training import TrainSettings, fit_and_evaluate
from dealscore.schemas import (
    Accounts,
    Activities,
    Contacts,
    CrmTables,
    Forecasts,
    Opportunities,
    Owners,
    StageHistory,
)
from dealscore.synthetic import GeneratorSettings, generate_crm

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"


@pytest.fixture(scope="session")
def _session_store(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(autouse=True)
def _mlflow_store(_session_store, monkeypatch) -> None:
    """No test writes to the working directory's MLflow store: runs go to a temporary one (tests
    of the registry use their own fresh store). Reset per test, because mlflow.set_tracking_uri
    also sets MLFLOW_TRACKING_URI for the rest of the process."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", _session_store)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)  # set_experiment exports it too
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)


@pytest.fixture(autouse=True)
def _report_cache(tmp_path_factory, monkeypatch) -> None:
    """The report's replay cache goes to a temporary folder, never ~/.cache."""
    monkeypatch.setenv("DEALSCORE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


# The public-domain sample ships with the repository; DEALSCORE_MAVEN_DIR points elsewhere.
MAVEN_DIR = Path(
    os.environ.get(
        "DEALSCORE_MAVEN_DIR",
        Path(__file__).resolve().parents[1] / "examples" / "maven-crm" / "data",
    )
)


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture
def tables() -> CrmTables:
    """A tiny export touching all seven tables; every rule holds."""
    return CrmTables(
        opportunities=pd.DataFrame(
            {
                Opportunities.opportunity_id: ["O1", "O2", "O3"],
                Opportunities.created_at: [ts("2025-01-01"), ts("2025-02-01"), ts("2025-03-01")],
                Opportunities.status: ["won", "lost", "open"],
                Opportunities.closed_at: [ts("2025-03-01"), ts("2025-04-01"), pd.NaT],
                Opportunities.account_id: ["A1", "A2", "A1"],
                Opportunities.owner_id: ["U1", "U2", "U1"],
                Opportunities.amount: [1000.0, 2500.0, 400.0],
            }
        ),
        accounts=pd.DataFrame(
            {
                Accounts.account_id: ["A1", "A2"],
                Accounts.industry: ["software", "retail"],
                Accounts.employees: [120, 40],
            }
        ),
        stage_history=pd.DataFrame(
            {
                StageHistory.opportunity_id: ["O1", "O1", "O2"],
                StageHistory.changed_at: [ts("2025-01-01"), ts("2025-03-01"), ts("2025-02-01")],
                StageHistory.stage: ["prospecting", "closed_won", "prospecting"],
            }
        ),
        activities=pd.DataFrame(
            {
                Activities.occurred_at: [ts("2025-01-05"), ts("2025-02-10")],
                Activities.type: ["email", "meeting"],
                Activities.opportunity_id: ["O1", None],
                Activities.account_id: ["A1", "A2"],
                Activities.contact_id: ["C1", "C2"],
                Activities.direction: ["inbound", "outbound"],
            }
        ),
        contacts=pd.DataFrame(
            {
                Contacts.contact_id: ["C1", "C2"],
                Contacts.account_id: ["A1", "A2"],
                Contacts.seniority: ["vp", None],
            }
        ),
        forecasts=pd.DataFrame(
            {
                Forecasts.opportunity_id: ["O1", "O3"],
                Forecasts.submitted_at: [ts("2025-02-07"), ts("2025-03-07")],
                Forecasts.forecast_category: ["commit", "pipeline"],
                Forecasts.probability: [0.8, None],
            }
        ),
        owners=pd.DataFrame(
            {Owners.owner_id: ["U1", "U2", "M1"], Owners.manager_id: ["M1", "M1", None]}
        ),
    )


YEAR_EXPORT = pd.Timestamp("2026-06-01", tz="UTC")
TRAINED_A_YEAR_BEFORE = YEAR_EXPORT - pd.Timedelta(days=365)


@pytest.fixture(scope="session")
def year_after_training() -> tuple[CrmTables, LoadedModel]:
    """A steady generated world (2,500 deals over 2.5 years to 2026-06-01) and a champion trained
    on its export as it stood a year before its end (`loaded.bundle.metadata["cutoff"]`),
    bundled as the training job bundles it, without MLflow: the year after is there to score."""
    tables = generate_crm(
        GeneratorSettings(deals=2500, years=2.5, seed=3, export_date=YEAR_EXPORT)
    ).tables
    quick = TrainSettings(
        n_estimators=80, learning_rate=0.1, icp="", forward_dates=0, ladder=("lightgbm",)
    )
    trained = fit_and_evaluate(tables_as_of(tables, TRAINED_A_YEAR_BEFORE), quick)
    return tables, LoadedModel(trained.bundle(), "dealscore-year", "1", "run")


@pytest.fixture
def maven_dir() -> Path:
    """The real sample: part of the repository, so its absence is a failure, not a skip."""
    assert MAVEN_DIR.is_dir(), f"the Maven CRM sample is not at {MAVEN_DIR}"
    return MAVEN_DIR


# PostgreSQL: a real server, started on loopback in a temporary folder.
def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / name).exists():
            return str(base / name)
    return None


class PostgresServer:
    """A PostgreSQL server of its own, on loopback in a temporary folder; `stop` and `start`
    let a test take it away mid-run and bring it back."""

    def __init__(self) -> None:
        initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if not (initdb and pg_ctl):
            message = (
                "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql"
            )
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        pytest.importorskip("psycopg")
        # Directly under the temp root: pytest's own folders are private to the user running it.
        self.folder = Path(tempfile.mkdtemp(prefix="dealscore-pg-"))
        self.data, sock = self.folder / "data", self.folder / "sock"
        sock.mkdir()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root: run it as the `postgres` user Debian adds.
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                message = "running as root and no 'postgres' user to run the server as"
                if os.environ.get("CI") == "true":
                    pytest.fail(message)
                pytest.skip(message)
            for path in (self.folder, sock):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.env = {**os.environ, "LC_ALL": "C"}
        self.pg_ctl = pg_ctl
        self.options = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1"
        made = subprocess.run(
            [
                *self.prefix,
                initdb,
                "-D",
                str(self.data),
                "-U",
                "dealscore",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
            ],
            check=False,
            capture_output=True,
            text=True,
            env=self.env,
        )
        assert made.returncode == 0, made.stderr
        self.url = f"postgresql+psycopg://dealscore@127.0.0.1:{port}/postgres"

    def start(self) -> None:
        subprocess.run(
            [*self.prefix, self.pg_ctl, "-D", str(self.data), "-o", self.options, "-w", "start"]
            + ["-l", str(self.folder / "log")],
            check=True,
            capture_output=True,
            env=self.env,
        )

    def stop(self) -> None:
        subprocess.run(
            [*self.prefix, self.pg_ctl, "-D", str(self.data), "-m", "fast", "stop"],
            check=False,  # the server may already be gone; nothing to do about it then
            capture_output=True,
            env=self.env,
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    server = PostgresServer()
    server.start()
    try:
        yield server.url
    finally:
        server.remove()


@pytest.fixture
def own_postgres():
    """A server for one test alone, which it may stop and start (the shared one stays up)."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def pg_database(postgres) -> Callable[[str], str]:
    """Makes a fresh database of a name on the test server and returns its URL: a test that
    counts rows must not see what other tests wrote to the shared one."""

    def fresh(name: str) -> str:
        engine = sa.create_engine(postgres, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
        engine.dispose()
        return sa.engine.make_url(postgres).set(database=name).render_as_string(False)

    return fresh


@pytest.fixture
def tmpfs(tmp_path) -> Iterator[Callable[[str], Path]]:
    """Mounts a small file system of its own (a tmpfs of the given size) under tmp_path, where
    the test may mount one (root with the right to, as in a throwaway container); skips
    elsewhere. Each is unmounted after the test."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        target = tmp_path / f"fs{len(mounted)}"
        target.mkdir()
        if shutil.which("mount") is None:
            pytest.skip("no mount command here; the injected fault covers it")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(target)],
            check=False,
            capture_output=True,
        )
        if done.returncode != 0:
            pytest.skip("no tmpfs can be mounted here (needs root); the injected fault covers it")
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", "-l", str(target)], check=False, capture_output=True)

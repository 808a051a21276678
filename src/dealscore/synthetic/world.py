"""The synthetic company's world: accounts (with a hidden ICP), sales reps and contacts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dealscore.schemas.tables import Accounts, ContactRole, Contacts, Owners, Seniority
from dealscore.synthetic.names import companies, people

# Hidden ICP: log-odds each firmographic adds to a deal's quality. The documented ICP a team
# writes down is only partly right, as in life; the learned profile must find the rest.
INDUSTRY_EFFECT: dict[str, float] = {
    "software": 0.8,
    "financial_services": 0.6,
    "healthcare": 0.2,
    "manufacturing": 0.0,
    "media": -0.2,
    "retail": -0.4,
    "education": -0.5,
    "public_sector": -0.6,
}
INDUSTRY_SHARE = np.array([0.18, 0.14, 0.12, 0.16, 0.08, 0.14, 0.09, 0.09])
REGION_EFFECT: dict[str, float] = {"north_america": 0.3, "emea": 0.1, "apac": -0.2, "latam": -0.4}
REGION_SHARE = np.array([0.45, 0.30, 0.15, 0.10])
COUNTRIES: dict[str, list[str]] = {
    "north_america": ["United States", "Canada"],
    "emea": ["United Kingdom", "Germany", "France", "Netherlands", "Sweden"],
    "apac": ["Australia", "Japan", "Singapore", "India"],
    "latam": ["Brazil", "Mexico", "Chile"],
}
# Employee bands (upper bounds) and their effect: the sweet spot is mid-market.
SIZE_BANDS = np.array([50, 200, 1000, 5000, np.inf])
SIZE_EFFECT = np.array([-0.6, 0.0, 0.6, 0.5, 0.1])
# Seniority from junior to senior: contacts are stored in this order within an account.
SENIORITY_ORDER = [
    Seniority.INDIVIDUAL,
    Seniority.MANAGER,
    Seniority.DIRECTOR,
    Seniority.VP,
    Seniority.EXECUTIVE,
]
SENIORITY_SHARE = np.array([0.32, 0.30, 0.20, 0.11, 0.07])
TITLES = {
    Seniority.INDIVIDUAL: "Analyst",
    Seniority.MANAGER: "Operations Manager",
    Seniority.DIRECTOR: "Director of IT",
    Seniority.VP: "VP Engineering",
    Seniority.EXECUTIVE: "Chief Technology Officer",
}


def ids(prefix: str, n: int, width: int) -> pd.Series:
    """Zero-padded string ids: ACC000001, ..."""
    return prefix + pd.Series(np.arange(1, n + 1)).astype("str").str.zfill(width)


def size_band(employees: np.ndarray) -> np.ndarray:
    return np.searchsorted(SIZE_BANDS, employees, side="left")


@dataclass(frozen=True)
class World:
    accounts: pd.DataFrame
    owners: pd.DataFrame
    contacts: pd.DataFrame
    icp_fit: np.ndarray  # per account, the hidden ICP log-odds
    region_code: np.ndarray  # per account
    owner_skill: np.ndarray  # per rep (deal owners only)
    owner_bias: np.ndarray  # per rep: optimism (+) or sandbagging (-) of their forecasts
    owner_gives_probability: np.ndarray  # per rep
    reps_by_region: list[np.ndarray]  # rep positions per region code
    contact_offset: np.ndarray  # per account: first contact row
    contact_count: np.ndarray  # per account
    contact_ids: pd.Series
    rep_ids: pd.Series


def _accounts(
    rng: np.random.Generator, n_accounts: int, start: pd.Timestamp
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """(accounts, their ICP fit, region codes, employees)."""
    industries = np.array(list(INDUSTRY_EFFECT))
    regions = np.array(list(REGION_EFFECT))
    industry = rng.choice(len(industries), n_accounts, p=INDUSTRY_SHARE)
    region = rng.choice(len(regions), n_accounts, p=REGION_SHARE)
    employees = np.clip(np.round(rng.lognormal(np.log(350), 1.5, n_accounts)), 3, 250_000)
    revenue = employees * rng.lognormal(np.log(180_000), 0.5, n_accounts)
    band = size_band(employees)
    icp_fit = (
        np.array(list(INDUSTRY_EFFECT.values()))[industry]
        + np.array(list(REGION_EFFECT.values()))[region]
        + SIZE_EFFECT[band]
    )
    country = np.empty(n_accounts, dtype=object)
    for code, name in enumerate(regions):
        here = region == code
        country[here] = rng.choice(COUNTRIES[name], here.sum())
    accounts = pd.DataFrame(
        {
            Accounts.account_id: ids("ACC", n_accounts, 7),
            Accounts.name: companies(n_accounts).astype(object),
            Accounts.industry: industries[industry],
            Accounts.employees: employees,
            Accounts.annual_revenue: np.round(revenue, -3),
            Accounts.country: country,
            Accounts.region: regions[region],
            Accounts.created_at: start
            - pd.to_timedelta(rng.uniform(30, 5 * 365, n_accounts), unit="D"),
        }
    )
    return accounts, icp_fit, region, employees


def _owners(
    rng: np.random.Generator, n_reps: int, start: pd.Timestamp, sandbagger_share: float
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(reps and managers, each rep's region code, each rep's forecast bias). Reps sit in teams
    of about eight, each team in one region, each with a manager."""
    regions = np.array(list(REGION_EFFECT))
    n_teams = max(len(regions), int(np.ceil(n_reps / 8)))
    team_region = np.arange(n_teams) % len(regions)
    rep_team = np.arange(n_reps) % n_teams
    rep_ids = ids("REP", n_reps, 5)
    manager_ids = ids("MGR", n_teams, 3)
    hired = start - pd.to_timedelta(rng.uniform(30, 4 * 365, n_reps + n_teams), unit="D")
    owners = pd.DataFrame(
        {
            Owners.owner_id: pd.concat([rep_ids, manager_ids], ignore_index=True),
            Owners.name: people(n_reps + n_teams).astype(object),
            Owners.team: np.concatenate([rep_team, np.arange(n_teams)]).astype(str),
            Owners.manager_id: pd.concat(
                [
                    manager_ids[rep_team].reset_index(drop=True),
                    pd.Series([None] * n_teams, dtype="str"),
                ],
                ignore_index=True,
            ),
            Owners.region: regions[np.concatenate([team_region[rep_team], team_region])],
            Owners.hired_at: hired,
        }
    )
    owners[Owners.team] = "team_" + owners[Owners.team].str.zfill(2)
    owner_bias = rng.normal(0.0, 0.35, n_reps)
    sandbaggers = rng.random(n_reps) < sandbagger_share
    owner_bias[sandbaggers] -= 1.0
    return owners, team_region[rep_team], owner_bias


def _contacts(
    rng: np.random.Generator, employees: np.ndarray, account_ids: pd.Series
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(contacts, each account's first contact row, its number of contacts): bigger accounts
    have more; stored junior to senior within each account."""
    contact_count = 2 + rng.poisson(1.0 + 1.2 * np.log10(employees))
    contact_account = np.repeat(np.arange(len(employees)), contact_count)
    seniority_rank = rng.choice(len(SENIORITY_ORDER), len(contact_account), p=SENIORITY_SHARE)
    order = np.lexsort((seniority_rank, contact_account))
    contact_account, seniority_rank = contact_account[order], seniority_rank[order]
    contact_offset = np.concatenate([[0], np.cumsum(contact_count)[:-1]])
    roles = np.array([r.value for r in ContactRole])
    # Senior people decide; mid-level people champion or influence; juniors use.
    role = np.where(
        seniority_rank >= 3,
        roles[0],
        np.where(
            seniority_rank == 2,
            rng.choice(roles[1:3], len(seniority_rank)),
            rng.choice(roles[1:], len(seniority_rank)),
        ),
    )
    contacts = pd.DataFrame(
        {
            Contacts.contact_id: ids("CON", len(contact_account), 8),
            Contacts.account_id: account_ids.to_numpy()[contact_account],
            Contacts.title: np.array([TITLES[s] for s in SENIORITY_ORDER])[seniority_rank],
            Contacts.seniority: np.array([s.value for s in SENIORITY_ORDER])[seniority_rank],
            Contacts.role: role,
        }
    )
    return contacts, contact_offset, contact_count


def build_world(
    rng: np.random.Generator,
    n_accounts: int,
    n_reps: int,
    start: pd.Timestamp,
    sandbagger_share: float = 0.15,
) -> World:
    accounts, icp_fit, region, employees = _accounts(rng, n_accounts, start)
    owners, rep_region, owner_bias = _owners(rng, n_reps, start, sandbagger_share)
    contacts, contact_offset, contact_count = _contacts(
        rng, employees, accounts[Accounts.account_id]
    )
    return World(
        accounts=accounts,
        owners=owners,
        contacts=contacts,
        icp_fit=icp_fit,
        region_code=region,
        owner_skill=rng.normal(0.0, 0.35, n_reps),
        owner_bias=owner_bias,
        owner_gives_probability=rng.random(n_reps) < 0.6,
        reps_by_region=[np.flatnonzero(rep_region == code) for code in range(len(REGION_EFFECT))],
        contact_offset=contact_offset,
        contact_count=contact_count,
        contact_ids=contacts[Contacts.contact_id].rename(None),
        rep_ids=owners[Owners.owner_id].iloc[:n_reps].reset_index(drop=True).rename(None),
    )

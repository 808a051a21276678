"""The real Maven CRM sample ingests through its mapping with the known figures."""

from __future__ import annotations

from pathlib import Path

from dealscore.io import read_export
from dealscore.schemas import validate_tables

MAPPING = Path(__file__).resolve().parents[2] / "examples" / "maven-crm" / "mapping.yaml"


def test_maven_sample_ingests_and_validates(maven_dir):
    # when
    export = read_export(maven_dir, MAPPING)
    tables, report = validate_tables(export.tables)
    # then: the published figures, and only the known wart left as a warning
    assert report.ok, report.to_text()
    deals = tables.opportunities
    assert len(deals) == 8_800
    assert deals["status"].value_counts().to_dict() == {"won": 4_238, "lost": 2_473, "open": 2_089}
    assert [(w.rule, w.count) for w in report.warnings] == [("open deal has an account", 1_425)]
    # the warts are fixed by the mapping
    assert "GTXPro" not in set(deals["product"]) and deals["amount"].notna().all()
    assert "technolgy" not in set(tables.accounts["industry"])
    # close_value reveals the outcome and must not reach the contract
    assert "close_value" not in deals.columns
    assert deals.groupby("product")["amount"].nunique().eq(1).all()
    assert len(tables.accounts) == 85 and len(tables.owners) == 35

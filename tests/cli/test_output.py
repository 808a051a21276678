"""What every command shares when it speaks: counts and shares in words."""

from __future__ import annotations

from dealscore.cli.output import count, signed_pct


def test_counts_and_signed_shares_read_well():
    assert [count(1, "error"), count(1204, "error")] == ["1 error", "1,204 errors"]
    assert [signed_pct(v) for v in (-0.004, 0.0, 0.124, -0.031)] == ["0%", "0%", "+12%", "-3%"]

"""The cost benchmark's printed figures: the ratios, and how far they move from turn to turn."""

from __future__ import annotations

from hub.bench import CostFigures


def _figures(**turns: list[float]) -> CostFigures:
    return CostFigures(
        internal_ms=10.0, scoped_ms=11.0, audited_ms=13.2, repeats=50, page_size=20, **turns
    )


def test_the_ratios_are_the_medians_side_by_side() -> None:
    lines = _figures().lines()

    assert "scoped/internal 1.100 (+10.0%, target < 10%)" in lines[4]
    assert "served/scoped   1.200 (+20.0%, target < 15%)" in lines[5]
    assert len(lines) == 6  # no turns recorded: no spread printed


def test_the_spread_by_turn_gives_the_median_and_middle_half() -> None:
    lines = _figures(
        policy_turns=[1.02, 1.04, 1.06, 1.08],
        audit_turns=[1.5, 1.1, 1.3, 1.2, 1.4],  # in the order the turns ran
    ).lines()

    # Quartiles of 1.1..1.5 (exclusive method): 1.15, 1.3, 1.45.
    assert lines[-1] == (
        "audit cost by turn: median +30.0%, middle half +15.0% to +45.0% over 5 turns"
    )
    assert lines[-2].startswith("policy cost by turn: median +5.0%, middle half +2.5% to +7.5%")


def test_too_few_turns_print_no_spread() -> None:
    lines = _figures(policy_turns=[1.1, 1.2, 1.3], audit_turns=[1.1, 1.2, 1.3]).lines()

    assert not any("by turn" in line for line in lines)

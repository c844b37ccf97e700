"""Test helper for the protocol tasks (OV, REC): the leaderboard cell a run's record gets."""

from __future__ import annotations

from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[2] / "results" / "reference" / "protocol-numbers.csv"


def leaderboard_cell(results: Path, column: str, model: str = "glip-tiny") -> str:
    """The leaderboard cell of `model`'s run under `column`, with the protocol reference rows loaded."""
    from bench.reports import leaderboard as lb
    from bench.reports.load import load_record_frame
    from bench.reports.reference import load_reference

    table = lb.leaderboard_table(load_record_frame(results), load_reference([REFERENCE]))
    if column not in table.columns:
        raise AssertionError(f"no column {column!r} in {sorted(table.columns)}")
    return str(table[table["model"] == model].iloc[0][column])

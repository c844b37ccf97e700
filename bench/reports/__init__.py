"""Reports: tables and plots rebuilt from run records (and published reference numbers) alone.

load_record_frame(dir) -> DataFrame; leaderboard_table(df, reference) -> DataFrame; render_*; curve
figures; ablation tables. Heavy imports (matplotlib, scipy) stay in the modules that need them."""

from bench.reports.leaderboard import (
    format_cell,
    leaderboard_table,
    leaderboard_values,
    render_csv,
    render_html,
    render_latex,
    render_markdown,
)
from bench.reports.load import load_record_frame, records_to_frame
from bench.reports.reference import load_reference

__all__ = [
    "format_cell", "leaderboard_table", "leaderboard_values", "load_record_frame", "load_reference",
    "records_to_frame", "render_csv", "render_html", "render_latex", "render_markdown",
]

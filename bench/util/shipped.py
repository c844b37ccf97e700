"""Data that ships with the code (task YAMLs, reported numbers): read from the checkout when running from one,
else from the copy an installed package carries (pyproject.toml's package-dir maps it there)."""

from __future__ import annotations

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parents[1]


def shipped_dir(checkout_path: str, package_name: str) -> Path:
    """`checkout_path` (relative to the repository root) in a checkout, else bench/<package_name> installed."""
    root = BENCH_DIR.parent
    checkout = root / checkout_path
    if (root / "pyproject.toml").is_file() and checkout.is_dir():
        return checkout
    return BENCH_DIR / package_name

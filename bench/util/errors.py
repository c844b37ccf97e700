"""User-facing errors: each one names what to fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A problem with the user's input (a name, a path, a file). The CLI prints it without a traceback."""


def closest(name: str, valid: Iterable[str], n: int = 3) -> list[str]:
    """The valid names closest to `name`, best first."""
    return difflib.get_close_matches(name, list(valid), n=n, cutoff=0.4)


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> UserError:
    """An error for an unknown task / model / regime name that lists the valid ones and the closest match."""
    valid = sorted(valid)
    near = closest(name, valid)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    # "Valid: ..." rather than a made plural: kinds like "split of task synth-shapes" have none to append
    return UserError(f"unknown {kind} {name!r}.{hint} Valid: {', '.join(valid)}")

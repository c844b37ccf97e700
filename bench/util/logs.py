"""Logging with levels and progress bars that cooperate with it."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
LOGGER_NAME = "glip_bench"


def get_logger(name: str | None = None) -> logging.Logger:
    return logging.getLogger(LOGGER_NAME if name is None else f"{LOGGER_NAME}.{name}")


class _TqdmHandler(logging.StreamHandler):
    """Writes log lines through tqdm so they do not break an active progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def setup_logging(level: str | int = "INFO") -> None:
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level if isinstance(level, int) else level.upper())
    if not any(isinstance(h, _TqdmHandler) for h in logger.handlers):
        handler = _TqdmHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
    logger.propagate = False


def progress_bar(total: int | None, desc: str, position: int | None = None, unit: str = "it") -> tqdm:
    """A bar updated by hand (bar.update(n)), with rate and ETA; silent when GLIP_BENCH_NO_PROGRESS is set.
    position: the line it keeps when several processes draw bars at once."""
    disable = bool(os.environ.get("GLIP_BENCH_NO_PROGRESS"))
    return tqdm(total=total, desc=desc, position=position, leave=True, disable=disable, dynamic_ncols=True,
                unit=unit)


def progress(items: Iterable[T], desc: str, total: int | None = None, leave: bool = False,
             position: int | None = None) -> Iterable[T]:
    """A progress bar; silent when GLIP_BENCH_NO_PROGRESS is set (tests, CI logs)."""
    disable = bool(os.environ.get("GLIP_BENCH_NO_PROGRESS"))
    return tqdm(items, desc=desc, total=total, leave=leave, disable=disable, dynamic_ncols=True, position=position)

"""Placeholder until its issue lands; replaced by the real command."""

from bench.errors import UserError

HELP = "(not built yet)"


def add_arguments(parser) -> None:
    pass


def main(args) -> int:
    raise UserError("this subcommand is not built yet")

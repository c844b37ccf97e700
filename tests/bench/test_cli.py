import pytest

from bench.cli import COMMANDS, build_parser, main


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([name, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: glip-bench " + name)


def test_top_level_help_lists_all_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_help_states_each_default_once(capsys):
    """"(default 1,3,5,10) (default: None)": a help that states its default gets no second one, and an
    option without a value to show (None, False, []) gets none at all."""
    import re

    parser = build_parser()
    shown = 0
    for name in COMMANDS:
        with pytest.raises(SystemExit):
            parser.parse_args([name, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        for option_help in re.split(r" (?=--?[a-z])", out):
            assert option_help.count("(default") <= 1, (name, option_help)
        assert "(default: None)" not in out and "(default: [])" not in out and "(default: False)" not in out
        shown += out.count("(default: ")
    assert shown > 10  # defaults that the help text does not state are still shown

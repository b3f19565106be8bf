"""argparse mistakes print a short usage line and the message (not every flag), and each flag's help
states one default."""

import re

import pytest

from aam.cli.main import COMMANDS, build_parser, main


@pytest.mark.parametrize("argv,fragment", [
    (["train", "--lr", "abc"], "aam train: error: argument --lr: invalid float value: 'abc'"),
    (["trian"], "aam: error: argument COMMAND: invalid choice: 'trian'"),
    ([], "aam: error: the following arguments are required: COMMAND"),
    (["predict", "--model", "m.pt"], "aam predict: error: the following arguments are required: --table"),
])
def test_argparse_errors_are_two_short_lines(capsys, argv, fragment):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    usage, message = capsys.readouterr().err.strip().splitlines()
    assert usage.startswith("usage: aam") and len(usage) < 80, usage
    assert message.startswith(fragment), message


def test_one_default_per_help_text():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices and set(COMMANDS) <= set(a.choices))
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            defaults = re.findall(r"\(default", action.help or "")
            assert len(defaults) <= 1, (name, action.option_strings, action.help)
    quantiles = next(a for a in subparsers.choices["train"]._actions if "--quantiles" in a.option_strings)
    assert quantiles.help.endswith("(default: 0.1,0.5,0.9)"), quantiles.help

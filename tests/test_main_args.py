"""firmware/__main__.py reads the usual command line itself (argparse's help formatter costs
start-up time) and leaves everything else to argparse: both must give the same result."""

import pytest

from firmware.__main__ import _argparse, parse_args

FIELDS = ("board", "config", "state_dir", "mic", "speaker_dir", "log_level")


@pytest.mark.parametrize("argv", [
    ["--board", "pc-sim", "--config", "d.toml"],
    ["--config", "d.toml", "--board", "pc-sim", "--state-dir", "/s", "--log-level", "DEBUG"],
    ["--board=rpi4", "--config=a=b.toml", "--mic", "m.wav", "--speaker-dir", "out"],
    ["--board", "pc-sim", "--config", "d.toml", "--config", "e.toml"],  # argparse: the last
    ["--boa", "pc-sim", "--config", "d.toml"],  # an abbreviation argparse accepts
])
def test_same_as_argparse(argv):
    fast, reference = parse_args(argv), _argparse(argv)
    assert [getattr(fast, name) for name in FIELDS] == \
        [getattr(reference, name) for name in FIELDS]


@pytest.mark.parametrize("argv", [
    [], ["--board", "pc-sim"], ["--board", "pc-sim", "--config"], ["-h"],
    ["--board", "pc-sim", "--config", "d.toml", "--bogus", "1"],
    ["--board", "pc-sim", "--config", "d.toml", "extra"],
])
def test_everything_else_is_argparse(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code in (0, 2)
    printed = capsys.readouterr()
    assert "usage: python -m firmware" in printed.out + printed.err

"""The command line: building it imports no heavy library (so ``--help`` answers at once), and
the same thing has the same flag in every command."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from pipelines.cli import COMMANDS, build_parser, main

HEAVY = ("torch", "sklearn", "scipy", "pandas", "matplotlib", "seaborn", "h5py", "tensorboard", "yaml")


def test_building_the_parser_imports_no_heavy_library() -> None:
    probe = ("import sys, pipelines.cli as c; c.build_parser(); "
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.strip()
    assert out == "", f"building the dis-eval parser imported {out}"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subcommands(sub).items()})
    return found


def _flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """option string -> destination."""
    return {o: a.dest for a in parser._actions for o in a.option_strings}


def test_one_grammar_across_commands() -> None:
    subs = _subcommands(build_parser())
    assert {"prepare", "train", "evaluate", "score", "plot", "compare", "sweep", "main"} <= set(subs)
    canonical = {"--out": "out", "--data": "data", "--subset": "subset", "--seed": "seed", "--device": "device",
                 "--quiet": "quiet"}
    for name, sub in subs.items():
        flags = _flags(sub)
        for flag, dest in canonical.items():
            if flag in flags:
                assert flags[flag] == dest, (name, flag)
        # other spellings of the same things exist only as aliases of the canonical flag
        for alias, canon in (("--run-dir", "--out"), ("--output", "--out"), ("--no-progress", "--quiet")):
            if alias in flags:
                assert canon in flags and flags[alias] == flags[canon], (name, alias)


@pytest.mark.parametrize("command", [c.__name__.rsplit(".", 1)[-1].replace("main_job", "main") for c in COMMANDS])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: dis-eval " + command in capsys.readouterr().out

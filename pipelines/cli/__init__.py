"""The ``dis-eval`` command line: one module per command, each with ``register(subparsers)``.

Building the parser imports no heavy library (torch, scikit-learn, pandas, matplotlib): a
command imports what it needs when it runs, so ``dis-eval --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys

from dis_eval.errors import UserError
from pipelines.cli import compare, evaluate, main_job, plot, prepare, score, serve, sweep, train

COMMANDS = (prepare, train, evaluate, score, plot, compare, sweep, main_job, serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dis-eval",
        description="Disentanglement evaluation on dSprites: prepare data, train, score, compare, plot.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:  # one line, whatever the message quotes (a key holding "\r", ...)
        print("error: " + "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(exc)), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped (e.g. `| head`)
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0

"""The ``dis-eval`` command line: one sub-command module per stage of the pipeline."""

from __future__ import annotations

import argparse
import importlib
import sys

from dis_eval.errors import UserError

# Each module defines ``register(subparsers)``, adding its sub-command(s) with
# ``set_defaults(func=callable(args) -> int)``.
COMMAND_MODULES = (
    "pipelines.prepare",
    "pipelines.train",
    "pipelines.evaluate",
    "pipelines.plot",
    "pipelines.compare",
    "pipelines.sweep",
    "pipelines.main_job",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dis-eval",
        description="Disentanglement evaluation on dSprites: prepare data, train, score, compare, plot.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

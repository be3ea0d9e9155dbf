"""``python -m dis_eval.reference``: the steps of scripts/reproduce_reference.sh.

    python -m dis_eval.reference plan OUT.yaml [--seeds N] [--steps N] [--cpu]   # the sweep to run
    python -m dis_eval.reference collect SWEEP_DIR --set NAME [--dest DIR]
    python -m dis_eval.reference show [--root DIR]                   # mean ± sd over seeds

Errors are one line (exit status 2), as with ``dis-eval``.
"""

from __future__ import annotations

import argparse
import sys

from dis_eval.errors import UserError


def _plan(args: argparse.Namespace) -> int:
    from dis_eval.reference.plan import REFERENCE_SWEEP, write_plan

    path = write_plan(args.out, args.source or REFERENCE_SWEEP, args.seeds, args.cpu, args.steps)
    print(f"sweep file: {path}")
    return 0


def _collect(args: argparse.Namespace) -> int:
    from dis_eval.reference.collect import collect_runs

    report = collect_runs(args.sweep_dir, args.set, args.dest)
    print("\n".join(report.lines()))
    return 0


def _show(args: argparse.Namespace) -> int:
    from dis_eval.reference.results import load_reference, protocol_label

    ref = load_reference(args.root)
    print(ref.describe())
    for stat in ref.stats():
        k = stat.key
        print(f"  {k.setting():28s} {k.data:12s} {k.score:28s} {stat.cell(args.digits):34s} "
              f"[{protocol_label(k.protocol)}]")
    for problem in ref.problems:
        print(f"  unreadable: {problem}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dis_eval.reference", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="write the reference sweep file to run (seeds, CPU mode)")
    p.add_argument("out", help="where to write the sweep file")
    p.add_argument("--source", default=None, help="the sweep file to start from (default: the shipped one)")
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default: the file's list)")
    p.add_argument("--steps", type=int, default=None, help="batches per run (default: the file's)")
    p.add_argument("--cpu", action="store_true", help="the CPU smoke version on the test fixture")
    p.set_defaults(func=_plan)
    c = sub.add_parser("collect", help="copy finished runs into the reference layout, with provenance")
    c.add_argument("sweep_dir", help="the sweep's --out folder")
    c.add_argument("--set", required=True, help="the reference set's name (the sweep's name)")
    c.add_argument("--dest", default=None, help="root of the reference layout (default: the package's)")
    c.set_defaults(func=_collect)
    s = sub.add_parser("show", help="the reference results: mean ± sd over seeds")
    s.add_argument("--root", default=None, help="root of the reference layout (default: the package's)")
    s.add_argument("--digits", type=int, default=3)
    s.set_defaults(func=_show)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

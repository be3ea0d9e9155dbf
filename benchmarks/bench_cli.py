"""How fast the command line answers: wall time of ``dis-eval --help`` and of every
``dis-eval COMMAND --help`` (fresh processes, median of N), and which heavy libraries a parser
build imports (there should be none).

    python benchmarks/bench_cli.py [--repeats 7] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "sklearn", "scipy", "pandas", "matplotlib", "seaborn", "h5py", "tensorboard")
PROBE = ("import sys, pipelines.cli as c; c.build_parser(); "
         f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")


def timed(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", default=None, help="also write the figures as JSON")
    args = ap.parse_args()
    exe = shutil.which("dis-eval")
    if exe is None:
        sys.exit("dis-eval is not on PATH: activate the project's .venv first")
    from pipelines.cli import COMMANDS

    names = [c.__name__.rsplit(".", 1)[-1].replace("main_job", "main") for c in COMMANDS]
    result = {"python -c 'pass'": timed([sys.executable, "-c", "pass"], args.repeats),
              "dis-eval --help": timed([exe, "--help"], args.repeats)}
    for name in names:
        result[f"dis-eval {name} --help"] = timed([exe, name, "--help"], args.repeats)
    heavy = subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True, text=True).stdout.strip()
    for label, seconds in result.items():
        print(f"{label:<32} {seconds:6.3f} s")
    print(f"heavy libraries imported by building the parser: {heavy or 'none'}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump({"seconds": result, "heavy_imported": heavy.split(",") if heavy else []}, fh, indent=2)


if __name__ == "__main__":
    main()

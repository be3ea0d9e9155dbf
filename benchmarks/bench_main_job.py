"""Time the main job (the README's first command) stage by stage.

    python benchmarks/bench_main_job.py [--out DIR] [extra `dis-eval main` arguments]

Runs `dis-eval main` on its built-in defaults (target: <= ~15 min on a 2-core CPU), then
prints the per-stage seconds from OUT/manifest.json and writes them to
benchmarks/results_main_job_cpu.json. Measure on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench-main-output")
    args, extra = parser.parse_known_args()
    t0 = time.perf_counter()
    rc = subprocess.call([sys.executable, "-m", "pipelines.cli", "main", "--out", args.out, *extra])
    wall = time.perf_counter() - t0
    if rc != 0:
        print(f"dis-eval main failed (exit {rc})", file=sys.stderr)
        return rc
    manifest = json.loads((Path(args.out) / "manifest.json").read_text())
    print(f"\nmain job: {wall:.0f} s wall (process), {manifest['total_s']:.0f} s inside; "
          f"{os.cpu_count()} CPUs, device {manifest['device']}")
    for stage, seconds in manifest["timings_s"].items():
        print(f"  {seconds:8.1f} s  {stage}")
    record = {"wall_s": round(wall, 1), "stages_s": manifest["timings_s"], "cpus": os.cpu_count(),
              "device": manifest["device"], "machine": platform.platform(), "args": extra,
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out = Path(__file__).parent / f"results_main_job_{manifest['device'].split(':')[0]}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

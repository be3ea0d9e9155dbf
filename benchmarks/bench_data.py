"""Data-stage benchmarks: render, write, load, resident memory, dependent subsets.

    python benchmarks/bench_data.py [--workdir DIR] [--workers 2] [--json OUT.json]

Targets (issue): full render <= 60 s on 2 cores; resident memory of the full set in the data
object <= 0.5 GB; dependent subset build <= 10 s. Each measurement that depends on a cold
process (memory, load) runs in a fresh Python subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _sub(code: str) -> dict:
    """Run code in a fresh interpreter; it prints one JSON line last."""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


LOAD_CODE = r"""
import json, os, time, resource
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1]) * 1024
import torch, numpy as np
from dis_eval.data import DataSpec, load_data
torch.set_num_threads(1)
before = rss()
t = time.perf_counter()
data = load_data(DataSpec(source=%(path)r))
load_s = time.perf_counter() - t
after = rss()
t = time.perf_counter()
x = data.images(np.random.RandomState(0).randint(len(data), size=4096))
unpack_s = time.perf_counter() - t
print(json.dumps({"load_s": load_s, "rss_before": before, "rss_after": after,
                  "rss_delta": after - before, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "packed_bytes": data.packed.numel(), "unpack_4096_s": unpack_s}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", default=None, help="where to write the prepared file (default: a temp dir)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", default=None, help="also write the figures to this file")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from data_prep.render import render_full
    from dis_eval.data.dependent import Recipe, build_subset, search_seed
    from dis_eval.data.official import cache_paths, mean_pixel, read_npz, write_npz

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_data_"))
    work.mkdir(parents=True, exist_ok=True)
    res: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, {platform.python_version()}",
        "workers": args.workers,
    }
    t = time.perf_counter()
    packed = render_full(workers=args.workers, progress=True)
    res["render_full_s"] = round(time.perf_counter() - t, 2)
    res["mean_pixel"] = round(mean_pixel(packed), 6)
    path = work / "dsprites_full.npz"
    t = time.perf_counter()
    write_npz(path, packed, source="benchmark render", progress=True)
    res["write_npz_s"] = round(time.perf_counter() - t, 2)
    res["npz_mb"] = round(path.stat().st_size / 1e6, 1)
    del packed
    for c in cache_paths(path):
        c.unlink(missing_ok=True)
    t = time.perf_counter()
    read_npz(path, require_full=True)
    res["validate_read_npz_s"] = round(time.perf_counter() - t, 2)
    cold = _sub(LOAD_CODE % {"path": str(path)})  # no cache yet: inflates, then writes the cache
    warm = _sub(LOAD_CODE % {"path": str(path)})  # packed sidecar
    res["load_cold_s"] = round(cold["load_s"], 2)
    res["load_cached_s"] = round(warm["load_s"], 2)
    res["rss_full_set_data_object_mb"] = round(warm["rss_delta"] / 1e6, 1)
    res["peak_rss_cold_load_mb"] = round(cold["peak_rss"] / 1e6, 1)
    res["packed_store_mb"] = round(warm["packed_bytes"] / 1e6, 1)
    res["unpack_4096_images_cpu_s"] = round(warm["unpack_4096_s"], 4)
    for name, rec in (("authors", Recipe(8, 0.15, 42)), ("paper_text", Recipe(4, 0.15, 42))):
        t = time.perf_counter()
        s = build_subset(rec)
        res[f"subset_{name}_build_s"] = round(time.perf_counter() - t, 3)
        res[f"subset_{name}"] = f"{s.num_kept} rows, fraction {s.kept_fraction:.3f}, TC {s.total_correlation:.3f} nats"
    t = time.perf_counter()
    s = search_seed(4, 0.15, 0.15, 1.49, range(1000))
    res["seed_search_1000_s"] = round(time.perf_counter() - t, 2)
    res["seed_search_found"] = s.recipe.seed
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()

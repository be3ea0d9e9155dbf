"""Encode throughput: the project's encoder (dlib architecture, 10 latents) over the data set's
rows, by batch size, channels-last on/off, optionally torch.compile.

    # CPU (2-core CI machine), 65,536 rows per setting, projected to the full 737,280:
    python benchmarks/bench_encode.py --device cpu --threads 2 --rows 65536 --out bench_encode_cpu.json
    # GPU, whole set:
    python benchmarks/bench_encode.py --device cuda --compile --out bench_encode_gpu.json

Needs the prepared set (``dis-eval prepare dsprites``; ``$DIS_EVAL_DATA``), or ``--data FILE``.
Weights are random (throughput does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dis_eval.data import DataSpec, load_data  # noqa: E402
from dis_eval.encode import encode_data  # noqa: E402
from dis_eval.models import MODELS, ModelSpec, build_model  # noqa: E402

FULL = 737_280


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="dsprites")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rows", type=int, default=None, help="encode only the first N rows (projected to the full set)")
    ap.add_argument("--batch-sizes", default="256,1024,4096")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    ap.add_argument("--model", default="echo", choices=("echo", "beta_vae"))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    t0 = time.perf_counter()
    data = load_data(DataSpec(args.data), device=dev)
    load_s = time.perf_counter() - t0
    positions = None if args.rows is None else np.arange(min(args.rows, len(data)))
    n = len(data) if positions is None else len(positions)
    family = MODELS[args.model].family
    model, _ = build_model(ModelSpec(args.model, latents=10, d_max=64 if family == "echo" else None))
    model = model.to(dev).eval()
    results = []
    combos = [(int(b), cl, False) for b in args.batch_sizes.split(",") for cl in (True, False)]
    if args.compile:
        combos += [(int(b), True, True) for b in args.batch_sizes.split(",")]
    # warm-up (cudnn autotune, allocator, compile caches)
    warm = np.arange(min(4096, len(data)))
    encode_data(model, data, batch_size=1024, device=dev, positions=warm)
    for bs, cl, comp in combos:
        if comp:  # one untimed pass so compilation is not counted
            encode_data(model, data, batch_size=bs, device=dev, compile=True, channels_last=cl, positions=warm)
        codes = encode_data(model, data, batch_size=bs, device=dev, compile=comp, channels_last=cl,
                            positions=positions)
        s = codes.info["encode_seconds"]
        row = {"batch_size": bs, "channels_last": cl, "compile": comp, "rows": n, "seconds": s,
               "rows_per_s": n / s, "projected_full_set_s": FULL * s / n}
        results.append(row)
        print(f"batch {bs:5d} channels_last={cl!s:5} compile={comp!s:5}: {n / s:10.0f} rows/s, "
              f"full set {FULL * s / n:7.1f} s", flush=True)
    best = min(results, key=lambda r: r["projected_full_set_s"])
    out = {"device": str(dev), "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
           "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
           "torch": torch.__version__, "data_load_s": load_s, "results": results, "best": best}
    print(json.dumps(best))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

"""Metric suite speed against the reference package (disentanglement-lib 1.5).

Two comparisons, same seeds, same settings on both sides:

1. ``codes`` - the metric computations alone, given codes: our metrics on cached codes vs
   dlib's functions with a lookup representation (observations carry row positions), on the
   factor grid with synthetic 10-latent codes (a noisy linear mix of the factors). No images.
2. ``e2e`` - the full suite end to end, encoding included: ``encode_data`` over every row once
   + the suite, vs dlib's functions given the same encoder as representation function
   (images unpacked per call, encoded in dlib's batches of 64/16). Needs the prepared set.

    # metric computations, study defaults, every metric incl. dlib's DCI (slow: ~10+ min):
    python benchmarks/bench_metrics.py codes --out bench_metrics_codes.json
    # the same without the reference's DCI at 10,000 (DCI compared at --dci-num-train instead):
    python benchmarks/bench_metrics.py codes --dci-num-train 1000 --out bench_metrics_codes.json
    # end to end on the CPU at 1/10 of the study's sample counts:
    python benchmarks/bench_metrics.py e2e --device cpu --scale 0.1 --out bench_metrics_e2e_cpu.json
    # end to end on a GPU, ours only (the reference on a GPU is not a fair target):
    python benchmarks/bench_metrics.py e2e --device cuda --no-reference --out bench_metrics_e2e_gpu.json

``--scale`` multiplies every ``num_*`` setting (state it with the numbers). ``--metrics``
restricts the suite. ``--dci-backend hist`` times our named fast DCI backend as well.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dis_eval.data import DataSpec, GroundTruthData, load_data  # noqa: E402
from dis_eval.encode import EncodedData, encode_data, representation  # noqa: E402
from dis_eval.metrics import REGISTRY  # noqa: E402
from dis_eval.metrics.suite import resolve_settings  # noqa: E402

warnings.filterwarnings("ignore")


def scaled_settings(name: str, scale: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    s = resolve_settings(name, None)
    for k, v in s.items():
        if k.startswith("num_") and k != "num_bins":
            s[k] = max(2, int(round(v * scale)))
    s.update(extra or {})
    return s


def dlib_call(mods: dict, name: str, gt: Any, fn: Any, seed: int, s: dict[str, Any]) -> dict:
    rs = np.random.RandomState(seed)
    if name == "factor_vae":
        mods["gin"].bind_parameter("prune_dims.threshold", s["prune_threshold"])
        return mods["factor_vae"].compute_factor_vae(gt, fn, rs, batch_size=s["batch_size"], num_train=s["num_train"],
                                                     num_eval=s["num_eval"], num_variance_estimate=s["num_variance_estimate"])
    if name == "mig":
        return mods["mig"].compute_mig(gt, fn, rs, num_train=s["num_train"], batch_size=s["batch_size"])
    if name == "beta_vae":
        return mods["beta_vae"].compute_beta_vae_sklearn(gt, fn, rs, batch_size=s["batch_size"],
                                                         num_train=s["num_train"], num_eval=s["num_eval"])
    if name == "dci":
        return mods["dci"].compute_dci(gt, fn, rs, num_train=s["num_train"], num_test=s["num_test"],
                                       batch_size=s["batch_size"])
    if name == "sap":
        return mods["sap_score"].compute_sap(gt, fn, rs, num_train=s["num_train"], num_test=s["num_test"],
                                             batch_size=s["batch_size"], continuous_factors=s["continuous_factors"])
    if name == "modularity_explicitness":
        return mods["modularity_explicitness"].compute_modularity_explicitness(
            gt, fn, rs, num_train=s["num_train"], num_test=s["num_test"], batch_size=s["batch_size"])
    if name == "unsupervised":
        return mods["unsupervised_metrics"].unsupervised_metrics(gt, fn, rs, num_train=s["num_train"],
                                                                  batch_size=s["batch_size"])
    if name == "irs":
        return mods["irs"].compute_irs(gt, fn, rs, num_train=s["num_train"], batch_size=s["batch_size"],
                                       diff_quantile=s["diff_quantile"])
    raise ValueError(name)


def headline(name: str, result: dict) -> float:
    key = REGISTRY[name][2]
    alias = {"dci": "disentanglement", "modularity_explicitness": "modularity_score"}
    return float(np.real(result.get(key, result.get(alias.get(name, key)))))


def synthetic_codes(data: GroundTruthData, latents: int = 10, seed: int = 0) -> np.ndarray:
    rs = np.random.RandomState(seed)
    f = data.classes.astype(np.float64)
    f = (f - f.mean(0)) / f.std(0)
    mix = np.eye(5, latents) + 0.2 * rs.randn(5, latents)
    return (f @ mix + 0.1 * rs.randn(len(f), latents)).astype(np.float32)


def bench_codes(args: argparse.Namespace, names: list[str]) -> dict:
    from tests.dlib_reference import DlibData, import_dlib_metrics, lookup

    mods = import_dlib_metrics()
    data = GroundTruthData.grid()
    codes = synthetic_codes(data)
    rep = representation(EncodedData(codes))
    rows = []
    for name in names:
        extra = {}
        if name == "dci" and args.dci_num_train:
            extra = {"num_train": args.dci_num_train, "num_test": max(2, args.dci_num_train // 2)}
        s = scaled_settings(name, args.scale, extra)
        t = time.perf_counter()
        ours = REGISTRY[name][0](data, rep, np.random.RandomState(args.seed), **s)
        t_ours = time.perf_counter() - t
        row = {"metric": name, "settings": s, "ours_s": t_ours, "ours": headline(name, ours)}
        if not args.no_reference:
            t = time.perf_counter()
            ref = dlib_call(mods, name, DlibData(data), lookup(codes), args.seed, s)
            row.update(ref_s=time.perf_counter() - t, ref=headline(name, ref))
            row["speedup"] = row["ref_s"] / t_ours
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "settings"}), flush=True)
        if name == "dci" and args.dci_backend == "hist":
            t = time.perf_counter()
            h = REGISTRY[name][0](data, rep, np.random.RandomState(args.seed), **dict(s, backend="hist"))
            rows.append({"metric": "dci[backend=hist]", "settings": dict(s, backend="hist"),
                         "ours_s": time.perf_counter() - t, "ours": headline(name, h)})
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "settings"}), flush=True)
    return {"rows": rows}


class DlibImages:
    """dlib's GroundTruthData interface over our data object, with real images."""

    def __init__(self, data: GroundTruthData) -> None:
        self.data = data
        self.num_factors = data.num_factors
        self.factors_num_values = list(data.factor_sizes)
        self.observation_shape = [64, 64, 1]

    def sample_factors(self, num, rs):
        return self.data.sample_factors(num, rs)

    def sample_observations_from_factors(self, factors, rs):
        return self.data.sample_observations_from_factors(factors, rs)

    def sample(self, num, rs):
        f = self.sample_factors(num, rs)
        return f, self.sample_observations_from_factors(f, rs)

    def sample_observations(self, num, rs):
        return self.sample(num, rs)[1]


def bench_e2e(args: argparse.Namespace, names: list[str]) -> dict:
    from dis_eval.metrics.suite import run_suite
    from dis_eval.models import build_model

    dev = torch.device(args.device)
    data = load_data(DataSpec(args.data), device=dev)
    torch.manual_seed(0)
    model, _ = build_model({"model": "echo", "latents": 10, "d_max": 64})
    model = model.to(dev).eval()
    # A random-init encoder's f = tanh(a / 16) barely varies (std << 0.05: FactorVAE would prune
    # every latent and stop early). Standardise each latent on a probe batch so every metric
    # does its full work, as with a trained model.
    with torch.inference_mode():
        probe = model.encode(data.images(np.arange(0, len(data), max(1, len(data) // 4096))))[0]
    mu, sd = probe.mean(0), probe.std(0).clamp_min(1e-8)

    class Standardised(torch.nn.Module):
        family, d_max = "echo", 64

        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def encode(self, x):
            m, a = self.inner.encode(x)
            return (m - mu) / sd, a

    model = Standardised().to(dev).eval()
    overrides = {}
    for name in names:
        extra = {}
        if name == "dci" and args.dci_num_train:
            extra = {"num_train": args.dci_num_train, "num_test": max(2, args.dci_num_train // 2)}
        if name == "dci" and args.dci_backend == "hist":
            extra["backend"] = "hist"
        overrides[name] = {k: v for k, v in scaled_settings(name, args.scale, extra).items()}
    if dev.type == "cuda":  # warm-up: cudnn autotune and allocator, not counted
        encode_data(model, data, batch_size=args.batch_size, device=dev, positions=np.arange(8192))
    t0 = time.perf_counter()
    codes = encode_data(model, data, batch_size=args.batch_size, device=dev, compile=args.compile)
    t_enc = time.perf_counter() - t0
    res = run_suite(data, lambda s: representation(codes, "mean", s), names, args.seed, overrides)
    t_ours = time.perf_counter() - t0
    out = {"ours_total_s": t_ours, "ours_encode_s": t_enc, "ours_metrics_s": res["timings"],
           "ours_headline": res["headline"], "settings": overrides}
    print(json.dumps({k: v for k, v in out.items() if k != "settings"}), flush=True)
    if args.no_reference:
        return out
    from tests.dlib_reference import import_dlib_metrics

    mods = import_dlib_metrics()
    gt = DlibImages(data)

    def rep_fn(obs: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(obs)).to(dev).permute(0, 3, 1, 2)
        with torch.inference_mode():
            return model.encode(x)[0].float().cpu().numpy()

    ref_t, ref_h = {}, {}
    t0 = time.perf_counter()
    for name in names:
        if name == "dci" and args.dci_backend == "hist":
            continue  # the reference has no such backend
        t = time.perf_counter()
        r = dlib_call(mods, name, gt, rep_fn, args.seed, overrides[name])
        ref_t[name] = time.perf_counter() - t
        ref_h[name] = headline(name, r)
        print(json.dumps({"ref_metric": name, "s": ref_t[name], "headline": ref_h[name]}), flush=True)
    out.update(ref_total_s=time.perf_counter() - t0, ref_metrics_s=ref_t, ref_headline=ref_h)
    comparable = sum(res["timings"][n] for n in ref_t) + t_enc
    out["speedup_total"] = out["ref_total_s"] / comparable
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("codes", "e2e"))
    ap.add_argument("--metrics", default=",".join(REGISTRY))
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dci-num-train", type=int, default=None)
    ap.add_argument("--dci-backend", choices=("gbt", "hist"), default="gbt")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--data", default="dsprites")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [m for m in args.metrics.split(",") if m]
    t = time.perf_counter()
    body = bench_codes(args, names) if args.mode == "codes" else bench_e2e(args, names)
    import sklearn

    body.update(mode=args.mode, scale=args.scale, seed=args.seed, wall_s=time.perf_counter() - t,
                machine={"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                         "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
                versions={"numpy": np.__version__, "scikit-learn": sklearn.__version__, "torch": torch.__version__})
    if args.mode == "codes" and not args.no_reference:
        rows = [r for r in body["rows"] if "ref_s" in r]
        body["total_ours_s"] = sum(r["ours_s"] for r in rows)
        body["total_ref_s"] = sum(r["ref_s"] for r in rows)
        body["speedup_total"] = body["total_ref_s"] / body["total_ours_s"]
        print(f"total: ours {body['total_ours_s']:.1f} s, reference {body['total_ref_s']:.1f} s, "
              f"x{body['speedup_total']:.1f}")
    if args.out:
        Path(args.out).write_text(json.dumps(body, indent=2, default=float))


if __name__ == "__main__":
    main()

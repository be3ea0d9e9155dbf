"""Rebuild ``tests/data/dsprites_real_fixture.npz``: 3,000 real dSprites images (1,000 per shape).

Drawn (seed 0) from ``nma_dsprites_subset_20000.npz`` (colleenjg/neuromatch_ssl_tutorial,
Apache-2.0, derived from DeepMind's dSprites), stored in the partial official format:
``imgs`` (uint8 0/1, N x 64 x 64), ``latents_classes`` (int64, N x 6, colour first),
``latents_values`` (float64, N x 6) and ``original_dataset_indices``.

    python -m data_prep.make_fixture ../shared/reference/dsprites/nma_dsprites_subset_20000.npz tests/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dis_eval.data.factors import index_to_classes, official_latents

PER_SHAPE = 1000


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("nma_file")
    p.add_argument("out_dir")
    args = p.parse_args(argv)
    d = np.load(args.nma_file, allow_pickle=True, encoding="latin1")
    idx = d["original_dataset_indices"].astype(np.int64)
    rs = np.random.RandomState(0)
    shape = idx // 245760
    rows = np.concatenate([rs.choice(np.flatnonzero(shape == s), PER_SHAPE, replace=False) for s in range(3)])
    rows = rows[np.argsort(idx[rows])]
    classes6, values6 = official_latents(index_to_classes(idx[rows]))
    out = Path(args.out_dir) / "dsprites_real_fixture.npz"
    np.savez_compressed(
        out,
        imgs=d["imgs"][rows].astype(np.uint8),
        latents_classes=classes6,
        latents_values=values6,
        original_dataset_indices=idx[rows],
    )
    print(f"wrote {out} ({out.stat().st_size:,} bytes, {len(rows)} images)")


if __name__ == "__main__":
    main()

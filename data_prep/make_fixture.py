"""Rebuild the real-image test files in ``tests/data/`` from the NMA dSprites subsets.

Inputs: the two files published by colleenjg/neuromatch_ssl_tutorial (``dsprites/``; Apache-2.0,
derived from DeepMind's dSprites): ``nma_dsprites_subset_20000.npz`` (20,000 random images) and
``nma_dsprites_downsampled_46080.npz`` (every shape and scale on a regular sub-grid of orientation
and position). Each holds ``imgs`` (uint8 0/1, N x 64 x 64) and ``original_dataset_indices`` (the
rows' indices in the full official ordering); their ``latents_classes`` are not used (the
downsampled file counts them in its own grid).

Two commands, both taking the input paths as arguments:

``fixture NMA_SUBSET OUT_DIR`` writes ``OUT_DIR/dsprites_real_fixture.npz``: 3,000 real images
(1,000 per shape, drawn with seed 0 from the 20,000-image file) in the partial official format:
``imgs`` (uint8 0/1, N x 64 x 64), ``latents_classes`` (int64, N x 6, colour first),
``latents_values`` (float64, N x 6) and ``original_dataset_indices``.

``real-images NMA_FILE [NMA_FILE ...] OUT_DIR`` writes ``OUT_DIR/dsprites_real_images.npz``: every
distinct real image of the given files, compact and loadable with ``allow_pickle=False``:
``packed`` (uint8, N x 512: ``np.packbits`` of each 64 x 64 image, row-major, first pixel in the
most significant bit), ``indices`` (int32, N, sorted and unique: the rows' indices in the full
official ordering), ``in_files`` (uint8, N: bit k set when the row occurs in input file k) and
``files`` (the input file names, in that order). Rows present in several files must hold the
same image there; they are stored once.

    python -m data_prep.make_fixture fixture PATH/nma_dsprites_subset_20000.npz tests/data
    python -m data_prep.make_fixture real-images PATH/nma_dsprites_subset_20000.npz \\
        PATH/nma_dsprites_downsampled_46080.npz tests/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dis_eval.atomic import atomic_path
from dis_eval.data.factors import IMAGE_SIZE, NUM_IMAGES, index_to_classes, official_latents
from dis_eval.errors import UserError

PER_SHAPE = 1000
FIXTURE_NAME = "dsprites_real_fixture.npz"
REAL_IMAGES_NAME = "dsprites_real_images.npz"


def _load_nma(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(original_dataset_indices int64 (N,), imgs uint8 (N, 64, 64)) of one NMA file, checked."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    # The NMA files carry a pickled Python 2 metadata dict, so they need these options; only
    # the two plain arrays below are read.
    with np.load(path, allow_pickle=True, encoding="latin1") as d:
        missing = [k for k in ("imgs", "original_dataset_indices") if k not in d.files]
        if missing:
            raise UserError(f"{path}: not an NMA dSprites file (missing {', '.join(missing)})")
        idx = np.asarray(d["original_dataset_indices"]).astype(np.int64)
        imgs = np.asarray(d["imgs"])
    if imgs.shape != (len(idx), IMAGE_SIZE, IMAGE_SIZE) or idx.ndim != 1:
        raise UserError(f"{path}: expected imgs (N, 64, 64) and N indices, got {imgs.shape} and {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= NUM_IMAGES):
        raise UserError(f"{path}: original_dataset_indices outside 0..{NUM_IMAGES - 1}")
    if imgs.size and imgs.max() > 1:
        raise UserError(f"{path}: images must be 0/1")
    return idx, imgs.astype(np.uint8, copy=False)


def make_fixture(nma_subset: str | Path, out_dir: str | Path) -> Path:
    """The 3,000-image fixture (1,000 per shape, seed 0) in the partial official format."""
    idx, imgs = _load_nma(nma_subset)
    rs = np.random.RandomState(0)
    shape = idx // 245760
    rows = np.concatenate([rs.choice(np.flatnonzero(shape == s), PER_SHAPE, replace=False) for s in range(3)])
    rows = rows[np.argsort(idx[rows])]
    classes6, values6 = official_latents(index_to_classes(idx[rows]))
    out = Path(out_dir) / FIXTURE_NAME
    with atomic_path(out, suffix=".npz") as tmp:
        np.savez_compressed(
            tmp,
            imgs=imgs[rows],
            latents_classes=classes6,
            latents_values=values6,
            original_dataset_indices=idx[rows],
        )
    print(f"wrote {out} ({out.stat().st_size:,} bytes, {len(rows)} images)")
    return out


def make_real_images(nma_files: list[str | Path], out_dir: str | Path) -> Path:
    """Every distinct real image of ``nma_files``, bit-packed, with its official index."""
    if not 1 <= len(nma_files) <= 8:
        raise UserError("give 1 to 8 NMA files (one bit of 'in_files' each)")
    all_idx, all_packed, all_file = [], [], []
    for k, path in enumerate(nma_files):
        idx, imgs = _load_nma(path)
        all_idx.append(idx)
        all_packed.append(np.packbits(imgs.reshape(len(imgs), -1), axis=1))
        all_file.append(np.full(len(idx), k, dtype=np.uint8))
    idx = np.concatenate(all_idx)
    packed = np.concatenate(all_packed)
    file_of = np.concatenate(all_file)
    uniq, first, inverse = np.unique(idx, return_index=True, return_inverse=True)
    clash = np.flatnonzero(np.any(packed != packed[first][inverse], axis=1))
    if clash.size:
        raise UserError(f"index {int(idx[clash[0]])} holds different images in different rows of the inputs")
    in_files = np.zeros(len(uniq), dtype=np.uint8)
    np.bitwise_or.at(in_files, inverse, (np.uint8(1) << file_of).astype(np.uint8))
    out = Path(out_dir) / REAL_IMAGES_NAME
    with atomic_path(out, suffix=".npz") as tmp:
        np.savez_compressed(
            tmp,
            packed=packed[first],
            indices=uniq.astype(np.int32),
            in_files=in_files,
            files=np.array([Path(p).name for p in nma_files]),
        )
    print(f"wrote {out} ({out.stat().st_size:,} bytes, {len(uniq):,} distinct images of {len(idx):,} rows)")
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fixture", help=f"write OUT_DIR/{FIXTURE_NAME} (3,000 images, partial official format)")
    f.add_argument("nma_subset", help="nma_dsprites_subset_20000.npz")
    f.add_argument("out_dir")
    r = sub.add_parser("real-images", help=f"write OUT_DIR/{REAL_IMAGES_NAME} (all distinct images, bit-packed)")
    r.add_argument("nma_files", nargs="+", metavar="NMA_FILE",
                   help="nma_dsprites_subset_20000.npz nma_dsprites_downsampled_46080.npz")
    r.add_argument("out_dir")
    args = p.parse_args(argv)
    try:
        if args.command == "fixture":
            make_fixture(args.nma_subset, args.out_dir)
        else:
            make_real_images(args.nma_files, args.out_dir)
    except UserError as exc:
        p.exit(2, f"error: {exc}\n")


if __name__ == "__main__":
    main()

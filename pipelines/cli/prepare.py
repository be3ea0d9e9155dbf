"""``dis-eval prepare``: write the full dSprites set, or a dependent-factor subset.

    dis-eval prepare dsprites [--from FILE | --download | --render] [--out PATH]
    dis-eval prepare dependent (--preset authors|paper-text | --bins 4 --drop 0.15 --seed 42)
                               [--target-fraction 0.15] [--target-tc 1.49] [--out PATH]

Outputs go to ``$DIS_EVAL_DATA`` (default ``./data``) unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
from typing import Any

from dis_eval.data.dependent import PRESETS
from dis_eval.data.official.format import OFFICIAL_URL
from pipelines.cli.common import add_out, add_quiet, add_seed


def _run_dsprites(args: argparse.Namespace) -> int:
    from data_prep.prepare import DspritesSource, prepare_dsprites

    source = DspritesSource(
        from_path=args.from_path,
        download=args.download,
        render=args.render,
        skip_checksum=args.skip_checksum,
        url=args.url,
        workers=args.workers,
    )
    prepare_dsprites(args.out, source, progress=not args.quiet)
    return 0


def _run_dependent(args: argparse.Namespace) -> int:
    from data_prep.prepare import SubsetRequest, prepare_dependent

    request = SubsetRequest(
        preset=args.preset,
        bins=args.bins,
        drop=args.drop,
        seed=args.seed,
        target_fraction=args.target_fraction,
        target_tc=args.target_tc,
        seeds=args.seeds,
    )
    prepare_dependent(args.out, request, progress=not args.quiet)
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "prepare",
        help="write the full dSprites set or a dependent-factor subset",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="what", metavar="WHAT", required=True)

    d = sub.add_parser(
        "dsprites",
        help="the full set (737,280 images) in the official .npz format",
        description=(
            "Write the full set in the official format. Sources are tried in this order: --from FILE, "
            "--download, --render. With none given, an official file already in the data directory is "
            "used, else the set is rendered on this machine (and the output says so)."
        ),
    )
    d.add_argument("--from", dest="from_path", metavar="FILE",
                   help="the official dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz or .hdf5 (validated)")
    d.add_argument("--download", action="store_true", help="download the official file (checksum-verified)")
    d.add_argument("--render", action="store_true", help="draw the whole set on this machine")
    add_out(d, "output file or folder (default: $DIS_EVAL_DATA or ./data)")
    d.add_argument("--skip-checksum", action="store_true",
                   help="accept a --from file whose git blob id is not the official one (structure still validated)")
    d.add_argument("--url", default=OFFICIAL_URL, help=argparse.SUPPRESS)
    d.add_argument("--workers", type=int, default=None, help="render processes (default: min(2, CPUs))")
    add_quiet(d)
    d.set_defaults(func=_run_dsprites)

    g = sub.add_parser(
        "dependent",
        help="a dependent-factor subset (Brekelmans et al. 2019, Sec. 5.3) stored as HDF5",
        description=(
            "Build a dependent-factor subset: bin each factor, drop bin pairs with probability --drop "
            "(legacy numpy RandomState(--seed)). Presets: "
            + "; ".join(f"{k} = bins {v['bins']}, drop {v['drop']}, seed {v['seed']}" for k, v in PRESETS.items())
            + ". 'authors' gives the paper's 14.2 % of the rows and 1.49 nats (the text's '15 %')."
        ),
    )
    g.add_argument("--preset", choices=sorted(PRESETS), help="a named recipe")
    g.add_argument("--bins", type=int, default=None, help="bins per non-categorical factor (default 4)")
    g.add_argument("--drop", type=float, default=None, help="probability of dropping a bin pair (default 0.15)")
    add_seed(g, "seed of the legacy numpy generator (default 42)", default=None)
    g.add_argument("--target-fraction", type=float, default=None, help="search seeds for this kept fraction")
    g.add_argument("--target-tc", type=float, default=None, help="search seeds for this total correlation (nats)")
    g.add_argument("--seeds", type=int, default=1000, help="seeds searched: 0..N-1 (default 1000)")
    add_out(g, "output .h5 file or folder (default: $DIS_EVAL_DATA or ./data)")
    add_quiet(g)
    g.set_defaults(func=_run_dependent)

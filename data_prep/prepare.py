"""Build the prepared data files: the full dSprites set (official format) and dependent subsets.

Full-set sources, tried in this order:
1. ``--from FILE``: the official ``.npz`` (copied verbatim) or ``.hdf5`` (converted), validated:
   keys, shapes, dtypes, 0/1 values, latent order, and the upstream git blob id.
2. ``--download``: the official URL, streamed to a temp file and blob-id verified.
3. ``--render``: drawn on this machine by ``data_prep.render`` (geometry: docs/renderer.md).
With no source flag, an official file already in the data directory (or disentanglement_lib's
``$DISENTANGLEMENT_LIB_DATA/dsprites/``) is used, else the set is rendered, and the output says so.
When several flags are given they are tried in that order until one succeeds.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dis_eval.atomic import atomic_path, atomic_write_json, remove_temporaries
from dis_eval.data import PREPARED_NAME, default_data_dir
from dis_eval.data.dependent import PRESETS, Recipe, Subset, build_subset, search_seed, write_subset
from dis_eval.data.factors import NUM_IMAGES
from dis_eval.data.official import (
    OFFICIAL_HDF5_BLOB_ID,
    OFFICIAL_HDF5_NAME,
    OFFICIAL_NPZ_BLOB_ID,
    OFFICIAL_NPZ_NAME,
    OFFICIAL_URL,
    git_blob_id,
    mean_pixel,
    read_any,
    write_cache,
    write_npz,
)
from dis_eval.errors import UserError

# What the provenance of a rendered set names as its renderer: the module and its documentation.
RENDERER = "data_prep.render (docs/renderer.md)"


class _ProbeDone(Exception):
    """Raised inside ``atomic_path`` to discard the probe file instead of moving it into place."""


def _log(msg: str) -> None:
    print(msg, flush=True)


def resolve_out(out: str | os.PathLike[str] | None, default_name: str) -> Path:
    """The output file: ``out`` (a file, or a directory to put ``default_name`` in), else the data dir."""
    path = Path(out) if out else default_data_dir() / default_name
    # An existing folder, or a new path without a file suffix, is a folder to write into.
    if path.is_dir() or (not path.exists() and path.suffix == ""):
        path = path / default_name
    want = Path(default_name).suffix
    if path.suffix.lower() not in ((".h5", ".hdf5") if want == ".h5" else (want,)):
        raise UserError(f"--out {path}: the output must be a {want} file (or a folder)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the folder {path.parent}: {exc.strerror or exc}; choose another --out") from exc
    # Probe now so an unwritable target fails before minutes of work, not after: atomic_path
    # creates its temporary file beside ``path`` (a one-line UserError if it cannot), and the
    # exception makes it remove that file without touching ``path``.
    try:
        with atomic_path(path, suffix=".probe"):
            raise _ProbeDone
    except _ProbeDone:
        pass
    remove_temporaries(path.parent)  # what a killed earlier run left (only a dead writer's)
    return path


def provenance_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".npz") + ".provenance.json")


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    atomic_write_json(path, obj, sort_keys=True)


@dataclass
class PrepareResult:
    path: Path
    source: str
    provenance: dict[str, Any]


def _expected_blob(path: Path) -> str:
    return OFFICIAL_HDF5_BLOB_ID if path.suffix.lower() in (".hdf5", ".h5") else OFFICIAL_NPZ_BLOB_ID


def from_file(src: str | os.PathLike[str], out: Path, *, expected_blob_id: str | None = None,
              skip_checksum: bool = False, progress: bool = True) -> PrepareResult:
    """Validate an official ``.npz``/``.hdf5`` and write it to ``out`` (npz copied verbatim)."""
    src = Path(src)
    if not src.is_file():
        raise UserError(f"--from {src}: no such file")
    if src.suffix.lower() not in (".npz", ".hdf5", ".h5"):
        raise UserError(f"--from {src}: expected the official {OFFICIAL_NPZ_NAME} or {OFFICIAL_HDF5_NAME}")
    expected = expected_blob_id or _expected_blob(src)
    blob = git_blob_id(src)
    official = blob == expected
    if not official and not skip_checksum:
        raise UserError(
            f"--from {src}: git blob id {blob} is not the official file's {expected} "
            "(truncated, modified or not dSprites); re-download it, or pass --skip-checksum for a structurally valid non-official file"
        )
    loaded = read_any(src, require_full=True, progress=progress)  # keys, shapes, dtypes, values, order
    if src.suffix.lower() == ".npz":
        with atomic_path(out, suffix=".npz") as tmp:
            shutil.copyfile(src, tmp)
    else:
        write_npz(out, loaded.packed, source=f"converted from {src.name} (git blob id {blob})", progress=progress)
    write_cache(out, loaded.packed, "official" if official else f"non-official file {src.name}")
    prov = {"source": "file", "from": str(src), "from_blob_id": blob, "official": official,
            "mean_pixel": mean_pixel(loaded.packed)}
    return PrepareResult(out, "file", prov)


def from_download(out: Path, *, url: str = OFFICIAL_URL, expected_blob_id: str = OFFICIAL_NPZ_BLOB_ID,
                  progress: bool = True, timeout: float = 30.0) -> PrepareResult:
    """Download the official npz to ``out`` (blob-id verified), then validate its structure."""
    from data_prep.download import download

    blob = download(out, url=url, expected_blob_id=expected_blob_id, timeout=timeout, progress=progress)
    try:
        loaded = read_any(out, require_full=True, progress=progress)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    write_cache(out, loaded.packed, "official")
    return PrepareResult(out, "download", {"source": "download", "url": url, "blob_id": blob, "official": True})


def from_render(out: Path, *, workers: int | None = None, progress: bool = True) -> PrepareResult:
    """Render all 737,280 images here and write them in the official format."""
    from data_prep.render import render_full

    t0 = time.perf_counter()
    packed = render_full(workers=workers, progress=progress)
    t_render = time.perf_counter() - t0
    write_npz(out, packed, source=f"rendered by dis-eval {RENDERER}; not the official file", progress=progress)
    write_cache(out, packed, "render")
    mean = mean_pixel(packed)
    prov = {"source": "render", "renderer": RENDERER,
            "official": False, "mean_pixel": mean, "render_seconds": round(t_render, 2)}
    return PrepareResult(out, "render", prov)


def local_official_candidates() -> list[Path]:
    """Official files already on this machine, in the order they are tried without flags."""
    cands = [default_data_dir() / OFFICIAL_NPZ_NAME, default_data_dir() / OFFICIAL_HDF5_NAME]
    dl = os.environ.get("DISENTANGLEMENT_LIB_DATA")
    if dl:
        cands.append(Path(dl) / "dsprites" / OFFICIAL_NPZ_NAME)
    return [p for p in cands if p.is_file()]


@dataclass(frozen=True)
class DspritesSource:
    """Where the full set's images come from (``dis-eval prepare dsprites`` flags), tried in this
    order: ``from_path`` (an official .npz/.hdf5; ``skip_checksum`` accepts one whose git blob id
    is not the official file's), ``download`` (from ``url``), ``render`` (``workers`` processes).
    ``expected_blob_id`` replaces the official id for --from and --download. None of the three:
    an official file already on this machine, else the set is rendered."""

    from_path: str | os.PathLike[str] | None = None
    download: bool = False
    render: bool = False
    skip_checksum: bool = False
    url: str = OFFICIAL_URL
    expected_blob_id: str | None = None
    workers: int | None = None


def prepare_dsprites(out: str | os.PathLike[str] | None = None, source: DspritesSource | None = None, *,
                     progress: bool = True) -> PrepareResult:
    """Write the full set at ``out`` from the first source that works (see module docstring)."""
    src = source or DspritesSource()
    path = resolve_out(out, PREPARED_NAME)
    attempts: list[tuple[str, Any]] = []
    if src.from_path:
        attempts.append((f"--from {src.from_path}", lambda: from_file(src.from_path, path, expected_blob_id=src.expected_blob_id, skip_checksum=src.skip_checksum, progress=progress)))
    if src.download:
        attempts.append(("--download", lambda: from_download(path, url=src.url, expected_blob_id=src.expected_blob_id or OFFICIAL_NPZ_BLOB_ID, progress=progress)))
    if src.render:
        attempts.append(("--render", lambda: from_render(path, workers=src.workers, progress=progress)))
    if not attempts:
        for cand in local_official_candidates():
            attempts.append((f"official file {cand}", lambda c=cand: from_file(c, path, progress=progress)))
        if not attempts:
            _log("no source given and no official file found in the data directory: rendering the set on this "
                 "machine (use --download or --from FILE for the official file)")
        attempts.append(("--render (default)", lambda: from_render(path, workers=src.workers, progress=progress)))
    t0 = time.perf_counter()
    for i, (label, fn) in enumerate(attempts):
        try:
            result = fn()
            break
        except UserError as exc:
            if i == len(attempts) - 1:
                raise
            _log(f"warning: {label} failed: {exc}; trying {attempts[i + 1][0]}")
    result.provenance.update({"file": result.path.name, "images": NUM_IMAGES,
                              "written_blob_id": git_blob_id(result.path),
                              "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "seconds": round(time.perf_counter() - t0, 2)})
    _write_json(provenance_path(result.path), result.provenance)
    what = {"file": "validated official file" if result.provenance.get("official") else "validated non-official file",
            "download": "downloaded official file", "render": "rendered on this machine (not the official file)"}[result.source]
    _log(f"wrote {result.path} ({NUM_IMAGES:,} images; source: {what}); provenance in {provenance_path(result.path).name}")
    return result


def _same_preset(recipe: Recipe) -> str | None:
    for name, p in PRESETS.items():
        if (recipe.bins, recipe.drop, recipe.seed) == (p["bins"], p["drop"], p["seed"]):
            return name
    return None


@dataclass(frozen=True)
class SubsetRequest:
    """The dependent subset asked for (``dis-eval prepare dependent`` flags): a ``preset``, a recipe
    (``bins``/``drop``/``seed``; unset ones 4, 0.15, 42), or, with ``target_fraction`` and/or
    ``target_tc`` (nats), a search over seeds 0..``seeds``-1 for the recipe nearest the targets.
    Checked once here (one-line UserErrors); ``recipe`` is the recipe resolved (a search
    replaces its seed)."""

    preset: str | None = None
    bins: int | None = None
    drop: float | None = None
    seed: int | None = None
    target_fraction: float | None = None
    target_tc: float | None = None
    seeds: int = 1000
    recipe: Recipe = field(init=False)

    def __post_init__(self) -> None:
        preset, bins, drop, seed = self.preset, self.bins, self.drop, self.seed
        if preset is not None:
            if preset not in PRESETS:
                raise UserError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
            p = PRESETS[preset]
            for flag, given, val in (("--bins", bins, p["bins"]), ("--drop", drop, p["drop"]), ("--seed", seed, p["seed"])):
                if given is not None and given != val:
                    raise UserError(f"--preset {preset} fixes {flag} {val}; drop {flag} {given} or the preset")
            recipe = Recipe(p["bins"], p["drop"], p["seed"], preset)
        else:
            recipe = Recipe(4 if bins is None else bins, 0.15 if drop is None else drop, 42 if seed is None else seed)
        if self.searching and (preset is not None or seed is not None):
            raise UserError("--target-fraction/--target-tc search the seed: do not also give --seed or --preset")
        object.__setattr__(self, "recipe", recipe)

    @property
    def searching(self) -> bool:
        return self.target_fraction is not None or self.target_tc is not None


def prepare_dependent(out: str | os.PathLike[str] | None = None, request: SubsetRequest | None = None, *,
                      progress: bool = True) -> Subset:
    """Build a dependent subset (a preset, an explicit recipe, or a seed search) and store it as HDF5."""
    req = request or SubsetRequest()
    recipe, searching = req.recipe, req.searching
    default_name = (f"dependent_{recipe.name}.h5" if recipe.name else None)
    t0 = time.perf_counter()
    if searching:
        subset = search_seed(recipe.bins, recipe.drop, req.target_fraction, req.target_tc, range(req.seeds),
                             progress=progress)
    else:
        subset = build_subset(recipe)
    name = _same_preset(subset.recipe)
    if name and subset.recipe.name is None:
        subset = Subset(Recipe(subset.recipe.bins, subset.recipe.drop, subset.recipe.seed, name),
                        subset.indices, subset.kept_fraction, subset.total_correlation)
    r = subset.recipe
    default_name = default_name or f"dependent_bins{r.bins}_drop{r.drop:g}_seed{r.seed}.h5"
    path = resolve_out(out, default_name)
    write_subset(path, subset)
    built = f"preset '{r.name}'" if r.name else "custom recipe"
    if searching:
        targets = ", ".join(f"{k} {v:g}" for k, v in (("fraction", req.target_fraction), ("TC", req.target_tc))
                            if v is not None)
        _log(f"seed search over 0..{req.seeds - 1} (bins={r.bins}, drop={r.drop:g}) for {targets}: found seed {r.seed}")
    _log(f"built {built}: {subset.summary()}")
    _log(f"kept fraction {subset.kept_fraction:.4f}, total correlation {subset.total_correlation:.4f} nats "
         f"-> {path} ({time.perf_counter() - t0:.1f} s)")
    return subset

"""The official dSprites file format: keys, checksums, validation, streaming read and write.

DeepMind's ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` holds ``imgs`` (uint8 0/1,
737280 x 64 x 64), ``latents_values`` (float64, 737280 x 6), ``latents_classes`` (int64,
737280 x 6, colour first) and ``metadata`` (a pickled Python 2 dict: load with
``allow_pickle=True, encoding="latin1"``). The ``.hdf5`` twin stores ``imgs``,
``latents/classes`` and ``latents/values``.

Images are read in chunks and bit-packed on the fly (``np.packbits`` layout, 512 bytes an
image), so loading the full set never holds the 3 GB unpacked array.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dis_eval.atomic import atomic_path
from dis_eval.data.factors import (
    IMAGE_SIZE,
    NUM_IMAGES,
    OFFICIAL_LATENT_NAMES,
    OFFICIAL_LATENT_SIZES,
    PACKED_BYTES,
    all_classes,
    classes_to_index,
    latent_possible_values,
    official_latents,
)
from dis_eval.errors import UserError

OFFICIAL_NPZ_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
OFFICIAL_HDF5_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5"
OFFICIAL_URL = (
    "https://github.com/deepmind/dsprites-dataset/raw/master/" + OFFICIAL_NPZ_NAME
)
# Upstream git blob ids (``git hash-object``): the only checksums of the official files
# that can be recomputed by anyone; see spec/metric-pitfalls.md.
OFFICIAL_NPZ_BLOB_ID = "d98996d3f8ee1550e06b9d4ed78d0beb478910d5"
OFFICIAL_HDF5_BLOB_ID = "3c8de5d40afa425dfd9de811d71248449aae238b"

REQUIRED_NPZ_KEYS = ("imgs", "latents_classes", "latents_values", "metadata")
CHUNK_IMAGES = 16384  # images decoded per chunk when streaming (64 MB unpacked)


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def count_on_pixels(packed: np.ndarray) -> np.ndarray:
    """On-pixels per bit-packed image (n, 512) -> int64 (n,)."""
    counts = np.bitwise_count(packed) if hasattr(np, "bitwise_count") else _POPCOUNT[packed]
    return counts.sum(axis=1, dtype=np.int64)


def mean_pixel(packed: np.ndarray) -> float:
    """Mean pixel value of bit-packed images."""
    return float(count_on_pixels(packed).sum() / (packed.shape[0] * PACKED_BYTES * 8))


def git_blob_id(path: str | os.PathLike[str], progress: Callable[[int], None] | None = None) -> str:
    """SHA-1 git blob id of a file: sha1(b"blob <size>\\0" + bytes), as ``git hash-object``."""
    size = os.path.getsize(path)
    h = hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as f:
        while True:
            buf = f.read(1 << 22)
            if not buf:
                break
            h.update(buf)
            if progress is not None:
                progress(len(buf))
    return h.hexdigest()


@dataclass
class LoadedImages:
    """Rows read from an official-format file: full-set indices (sorted), packed images, metadata."""

    indices: np.ndarray  # int64 (n,), sorted, unique
    packed: np.ndarray  # uint8 (n, 512)
    metadata: dict[str, Any] = field(default_factory=dict)
    full: bool = False  # True when the file is a complete, correctly ordered official set


def _metadata_dict(raw: Any) -> dict[str, Any]:
    """The official metadata is a 0-d object array holding a dict (pickled, latin1)."""
    try:
        value = raw[()] if isinstance(raw, np.ndarray) else raw
    except Exception:  # noqa: BLE001 - any odd object: treat as absent
        return {}
    return dict(value) if isinstance(value, dict) else {}


def official_metadata(source: str) -> dict[str, Any]:
    """Metadata dict compatible with the official one, plus ``source`` provenance."""
    return {
        "date": "April 2017",
        "description": (
            "Disentanglement test Sprites dataset. Procedurally generated 2D shapes, from 6 "
            "disentangled latent factors (color, shape, scale, orientation, posX, posY), "
            "in the official order with posY fastest."
        ),
        "version": 1,
        "latents_names": OFFICIAL_LATENT_NAMES,
        "latents_possible_values": latent_possible_values(),
        "latents_sizes": np.array(OFFICIAL_LATENT_SIZES, dtype=np.int64),
        "author": "lmatthey@google.com",
        "title": "dSprites dataset",
        "source": source,
    }


def _check_latents(classes6: np.ndarray, values6: np.ndarray | None, name: str) -> None:
    if classes6.dtype != np.int64 or classes6.shape != (NUM_IMAGES, 6):
        raise UserError(
            f"{name}: latents_classes must be int64 {(NUM_IMAGES, 6)}, got {classes6.dtype} "
            f"{classes6.shape}; pass the official dSprites file or re-run `dis-eval prepare dsprites`"
        )
    expected = np.zeros((NUM_IMAGES, 6), dtype=np.int64)
    expected[:, 1:] = all_classes()
    if not np.array_equal(classes6, expected):
        raise UserError(
            f"{name}: latents_classes are not in the official order (posY fastest); "
            "the file is not an official-format dSprites set"
        )
    if values6 is not None:
        if values6.dtype != np.float64 or values6.shape != (NUM_IMAGES, 6):
            raise UserError(
                f"{name}: latents_values must be float64 {(NUM_IMAGES, 6)}, got {values6.dtype} "
                f"{values6.shape}"
            )
        _, exp_values = official_latents(expected[:, 1:])
        if not np.allclose(values6, exp_values, rtol=0, atol=1e-6):
            raise UserError(f"{name}: latents_values do not match the official latent grid")


def _pack_chunk(chunk: np.ndarray, name: str) -> np.ndarray:
    """Validate a (k, 64, 64) uint8 chunk holds only 0/1 and bit-pack it to (k, 512)."""
    if chunk.size and chunk.max() > 1:
        raise UserError(f"{name}: imgs must hold only 0 and 1 (found {int(chunk.max())})")
    return np.packbits(chunk.reshape(chunk.shape[0], -1), axis=1)


def _iter_npy_member(zf: zipfile.ZipFile, member: str, name: str) -> tuple[tuple[int, ...], np.dtype, Iterator[np.ndarray]]:
    """Open an .npy member of a zip and yield it in chunks of CHUNK_IMAGES along axis 0."""
    fh = zf.open(member)
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    if fortran:
        raise UserError(f"{name}: {member} is stored Fortran-ordered; expected C order")
    row = int(np.prod(shape[1:])) * dtype.itemsize if len(shape) > 1 else dtype.itemsize

    def gen() -> Iterator[np.ndarray]:
        try:
            remaining = shape[0]
            while remaining > 0:
                k = min(CHUNK_IMAGES, remaining)
                buf = fh.read(k * row)
                if len(buf) != k * row:
                    raise UserError(f"{name}: {member} is truncated; re-download or re-prepare the file")
                yield np.frombuffer(buf, dtype=dtype).reshape((k,) + tuple(shape[1:]))
                remaining -= k
        finally:
            fh.close()

    return tuple(shape), dtype, gen()


def read_npz(
    path: str | os.PathLike[str],
    *,
    require_full: bool = False,
    progress: bool = False,
) -> LoadedImages:
    """Read an official-format (or partial official-format) ``.npz`` into packed rows.

    A full file must have the official keys, shapes, dtypes and latent order. A partial file
    (such as the real-image test fixture) needs ``imgs`` (uint8 0/1, N x 64 x 64) or
    ``imgs_packed`` (uint8, N x 512) and ``latents_classes`` (int64, N x 6 with colour first,
    or N x 5); its rows may come in any order and are returned sorted by full-set index.
    """
    name = os.fspath(path)
    try:
        zf = zipfile.ZipFile(name)
    except FileNotFoundError as exc:
        raise UserError(f"{name}: no such file") from exc
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UserError(f"{name}: not a readable .npz file ({exc}); it may be truncated or corrupt") from exc
    try:
        with zf:
            members = {m[:-4]: m for m in zf.namelist() if m.endswith(".npy")}
            return _read_npz_members(zf, members, name, require_full, progress)
    except UserError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as exc:
        raise UserError(f"{name}: corrupt .npz file ({type(exc).__name__}: {exc}); re-download or re-prepare it") from exc


class _MetadataUnpickler(pickle.Unpickler):
    """Unpickles only plain data (dicts, tuples, numpy arrays/scalars), never arbitrary callables.

    The official ``metadata`` is a pickled Python 2 dict; ``np.load(allow_pickle=True)`` would run
    whatever a crafted file names, so only the globals numpy arrays need are allowed.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
        ("__builtin__", "object"), ("builtins", "object"), ("collections", "OrderedDict"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"metadata refers to {module}.{name}, which is not plain data")
        return super().find_class(module, name)


def _load_small(zf: zipfile.ZipFile, member: str) -> np.ndarray:
    """Read a small .npy member; object arrays (metadata) go through the restricted unpickler."""
    with zf.open(member) as fh:
        buf = io.BytesIO(fh.read())
    version = np.lib.format.read_magic(buf)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    _, _, dtype = reader(buf)
    if not dtype.hasobject:
        buf.seek(0)
        return np.lib.format.read_array(buf, allow_pickle=False)
    try:
        return _MetadataUnpickler(buf, encoding="latin1").load()
    except (pickle.UnpicklingError, AttributeError, ImportError, EOFError) as exc:
        raise ValueError(f"cannot read {member}: {exc}") from exc


def _read_npz_members(
    zf: zipfile.ZipFile, members: dict[str, str], name: str, require_full: bool, progress: bool
) -> LoadedImages:
    if "latents_classes" not in members or ("imgs" not in members and "imgs_packed" not in members):
        missing = [k for k in ("imgs", "latents_classes") if k not in members]
        raise UserError(
            f"{name}: missing key(s) {missing} (found {sorted(members)}); expected the official "
            f"dSprites keys {list(REQUIRED_NPZ_KEYS)}"
        )
    if require_full:
        missing = [k for k in REQUIRED_NPZ_KEYS if k not in members]
        if missing:
            raise UserError(f"{name}: missing key(s) {missing}; expected {list(REQUIRED_NPZ_KEYS)}")
    classes = _load_small(zf, members["latents_classes"])
    values = _load_small(zf, members["latents_values"]) if "latents_values" in members else None
    metadata: dict[str, Any] = {}
    if "metadata" in members:
        try:
            metadata = _metadata_dict(_load_small(zf, members["metadata"]))
        except ValueError as exc:
            # Metadata is informational (sizes are checked against it when readable); the arrays
            # are validated on their own, so an unreadable pickle is reported, not fatal.
            import warnings

            warnings.warn(f"{name}: metadata ignored ({exc})", stacklevel=4)
    _check_metadata_sizes(metadata, name)

    if classes.ndim != 2 or classes.shape[1] not in (5, 6) or classes.dtype.kind not in "iu":
        raise UserError(f"{name}: latents_classes must be an integer N x 6 (or N x 5) array, got {classes.dtype} {classes.shape}")
    n = classes.shape[0]
    full = n == NUM_IMAGES and classes.shape[1] == 6
    if require_full or full:
        _check_latents(classes, values, name)
        full = True
        classes5 = None
        indices = np.arange(NUM_IMAGES, dtype=np.int64)
    else:
        classes5 = classes[:, 1:] if classes.shape[1] == 6 else classes
        try:
            indices = classes_to_index(classes5)
        except ValueError as exc:
            raise UserError(f"{name}: {exc}") from exc

    if "imgs" in members:
        shape, dtype, chunks = _iter_npy_member(zf, members["imgs"], name)
        if shape != (n, IMAGE_SIZE, IMAGE_SIZE) or dtype != np.uint8:
            raise UserError(
                f"{name}: imgs must be uint8 {(n, IMAGE_SIZE, IMAGE_SIZE)} to match latents_classes, "
                f"got {dtype} {shape}"
            )
        packed = np.empty((n, PACKED_BYTES), dtype=np.uint8)
        bar = _bar(n, f"reading {Path(name).name}", progress)
        start = 0
        for chunk in chunks:
            packed[start : start + len(chunk)] = _pack_chunk(chunk, name)
            start += len(chunk)
            bar.update(len(chunk))
        bar.close()
    else:
        packed = _load_small(zf, members["imgs_packed"])
        if packed.shape != (n, PACKED_BYTES) or packed.dtype != np.uint8:
            raise UserError(f"{name}: imgs_packed must be uint8 {(n, PACKED_BYTES)}, got {packed.dtype} {packed.shape}")

    if not full:
        order = np.argsort(indices, kind="stable")
        indices = indices[order]
        if np.any(np.diff(indices) == 0):
            raise UserError(f"{name}: latents_classes list the same image more than once")
        packed = packed[order]
    return LoadedImages(indices=indices, packed=packed, metadata=metadata, full=full)


def _check_metadata_sizes(metadata: dict[str, Any], name: str) -> None:
    sizes = metadata.get("latents_sizes")
    if sizes is None:
        return
    sizes = tuple(int(s) for s in np.asarray(sizes).ravel())
    if sizes not in (OFFICIAL_LATENT_SIZES, OFFICIAL_LATENT_SIZES[1:]) and metadata.get("version") not in ("1_downsampled",):
        raise UserError(f"{name}: metadata latents_sizes {sizes} differ from dSprites' {OFFICIAL_LATENT_SIZES}")


def read_hdf5(path: str | os.PathLike[str], *, progress: bool = False) -> LoadedImages:
    """Read the official ``.hdf5`` (``imgs``, ``latents/classes``, ``latents/values``) into packed rows."""
    import h5py

    name = os.fspath(path)
    if not os.path.exists(name):
        raise UserError(f"{name}: no such file")
    try:
        f = h5py.File(name, "r")
    except OSError as exc:
        raise UserError(f"{name}: not a readable HDF5 file ({exc}); it may be truncated or corrupt") from exc
    try:
        with f:
            def get(*keys: str) -> Any:
                for k in keys:
                    if k in f:
                        return f[k]
                raise UserError(f"{name}: missing dataset {keys[0]!r} (found {sorted(f.keys())})")

            imgs = get("imgs")
            classes = np.asarray(get("latents/classes", "latents_classes")[()])
            values = np.asarray(get("latents/values", "latents_values")[()])
            if imgs.shape != (NUM_IMAGES, IMAGE_SIZE, IMAGE_SIZE) or imgs.dtype != np.uint8:
                raise UserError(f"{name}: imgs must be uint8 {(NUM_IMAGES, IMAGE_SIZE, IMAGE_SIZE)}, got {imgs.dtype} {imgs.shape}")
            _check_latents(classes.astype(np.int64) if classes.dtype.kind in "iu" else classes, values, name)
            packed = np.empty((NUM_IMAGES, PACKED_BYTES), dtype=np.uint8)
            bar = _bar(NUM_IMAGES, f"reading {Path(name).name}", progress)
            for start in range(0, NUM_IMAGES, CHUNK_IMAGES):
                chunk = imgs[start : start + CHUNK_IMAGES]
                packed[start : start + len(chunk)] = _pack_chunk(chunk, name)
                bar.update(len(chunk))
            bar.close()
    except UserError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"{name}: corrupt HDF5 file ({exc}); re-download it") from exc
    return LoadedImages(indices=np.arange(NUM_IMAGES, dtype=np.int64), packed=packed, metadata={}, full=True)


def read_any(path: str | os.PathLike[str], *, require_full: bool = False, progress: bool = False,
             cache: bool = False) -> LoadedImages:
    """Read an official-format ``.npz`` or ``.hdf5``/``.h5`` by extension.

    With ``cache``, a full set is also kept as a bit-packed sidecar (``<file>.packed.npy``, 377 MB)
    tied to the file's git blob id: inflating 3 GB of images takes ~15 s, the sidecar ~1 s.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in (".hdf5", ".h5", ".npz"):
        raise UserError(f"{os.fspath(path)}: unknown file type {suffix!r}; expected an official-format .npz or .hdf5")
    blob = None
    if cache and os.path.isfile(path) and os.path.getsize(path) > (1 << 24):  # only full-size files
        blob = git_blob_id(path)
        hit = _read_cache(Path(path), blob)
        if hit is not None:
            return hit
    if suffix in (".hdf5", ".h5"):
        loaded = read_hdf5(path, progress=progress)
    else:
        loaded = read_npz(path, require_full=require_full, progress=progress)
    if blob is not None and loaded.full:
        _write_cache(Path(path), blob, loaded)
    return loaded


def write_cache(path: str | os.PathLike[str], packed: np.ndarray, source: str) -> None:
    """Store the packed sidecar of a full-set file just written from ``packed`` (saves the first load)."""
    loaded = LoadedImages(np.arange(NUM_IMAGES, dtype=np.int64), packed, {"source": source}, True)
    _write_cache(Path(path), git_blob_id(path), loaded)


def cache_paths(path: Path) -> tuple[Path, Path]:
    """The packed sidecar of a full-set file and its JSON stamp."""
    return path.with_name(path.name + ".packed.npy"), path.with_name(path.name + ".packed.json")


def _read_cache(path: Path, blob: str) -> LoadedImages | None:
    import json

    arr_path, stamp_path = cache_paths(path)
    try:
        stamp = json.loads(stamp_path.read_text())
        if stamp.get("source_blob_id") != blob:
            return None
        packed = np.load(arr_path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if packed.shape != (NUM_IMAGES, PACKED_BYTES) or packed.dtype != np.uint8:
        return None
    return LoadedImages(np.arange(NUM_IMAGES, dtype=np.int64), packed, dict(stamp.get("metadata", {})), True)


def _write_cache(path: Path, blob: str, loaded: LoadedImages) -> None:
    import json
    import warnings

    arr_path, stamp_path = cache_paths(path)
    tmp = arr_path.with_name(f".{arr_path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            np.save(f, loaded.packed, allow_pickle=False)
        os.replace(tmp, arr_path)
        meta = {"source": str(loaded.metadata.get("source", "official"))}
        stamp_path.write_text(json.dumps({"source_blob_id": blob, "metadata": meta}) + "\n")
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        warnings.warn(f"could not write the packed cache beside {path} ({exc}); loading stays slow", stacklevel=3)


def _bar(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", unit_scale=True, disable=not enabled, leave=False)


def write_npz(
    path: str | os.PathLike[str],
    packed_chunks: Iterator[np.ndarray] | np.ndarray,
    *,
    source: str,
    progress: bool = False,
    compresslevel: int = 1,
) -> None:
    """Write the full set in the official ``.npz`` format, atomically.

    ``packed_chunks`` yields bit-packed images (k, 512) in the official order, 737,280 in all.
    ``imgs`` is streamed into the zip (never held unpacked), ``latents_*`` are generated from
    the factor grid, and ``metadata`` is a plain dict (object array) like the official one,
    with ``source`` recording where the images came from. Nothing is left at ``path`` on error.
    """
    path = Path(path)
    if isinstance(packed_chunks, np.ndarray):
        arr = packed_chunks
        packed_chunks = (arr[i : i + CHUNK_IMAGES] for i in range(0, len(arr), CHUNK_IMAGES))
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as handle:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel, allowZip64=True) as zf:
            with zf.open("imgs.npy", "w", force_zip64=True) as fh:
                header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": (NUM_IMAGES, IMAGE_SIZE, IMAGE_SIZE)}
                np.lib.format.write_array_header_1_0(fh, header)
                written = 0
                bar = _bar(NUM_IMAGES, f"writing {path.name}", progress)
                for chunk in packed_chunks:
                    if chunk.ndim != 2 or chunk.shape[1] != PACKED_BYTES or chunk.dtype != np.uint8:
                        raise ValueError(f"packed chunk must be uint8 (k, {PACKED_BYTES}), got {chunk.dtype} {chunk.shape}")
                    fh.write(np.unpackbits(chunk, axis=1).tobytes())
                    written += len(chunk)
                    bar.update(len(chunk))
                bar.close()
                if written != NUM_IMAGES:
                    raise ValueError(f"expected {NUM_IMAGES} images, got {written}")
            classes6, values6 = official_latents(all_classes())
            for key, arr in (("latents_classes", classes6), ("latents_values", values6),
                             ("metadata", np.array(official_metadata(source), dtype=object))):
                with zf.open(f"{key}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, arr, allow_pickle=True)


"""Reading official-format files (.npz streamed and bit-packed on the fly, .hdf5), full or
partial, with every key, shape, dtype, value and the latent order checked. Images are read in
chunks and bit-packed (512 bytes an image), so loading the full set never holds the 3 GB
unpacked array. The pickled ``metadata`` is read by a restricted unpickler that runs nothing.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dis_eval.data.factors import IMAGE_SIZE, NUM_IMAGES, PACKED_BYTES, classes_to_index
from dis_eval.data.official.cache import read_cache, write_loaded_cache
from dis_eval.data.official.checksum import git_blob_id
from dis_eval.data.official.format import (
    CHUNK_IMAGES,
    REQUIRED_NPZ_KEYS,
    LoadedImages,
    check_latents,
    check_metadata_sizes,
    metadata_dict,
    progress_bar,
)
from dis_eval.errors import UserError


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
    except ForeignPickle as exc:
        raise UserError(_refused(name, exc)) from None
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
            raise ForeignPickle(f"a pickle in it names {module}.{name}, which is not plain data")
        return super().find_class(module, name)


class ForeignPickle(pickle.UnpicklingError):
    """A pickle naming code to run: a crafted file, refused (never merely ignored)."""


def _refused(name: str, exc: ForeignPickle) -> str:
    return (f"{name}: refused: {exc} (the file was crafted or altered; nothing in it was run); "
            "use the official file or prepare it again")


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
    except ForeignPickle:
        raise
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
            metadata = metadata_dict(_load_small(zf, members["metadata"]))
        except ForeignPickle as exc:
            raise UserError(_refused(name, exc)) from None
        except ValueError as exc:
            # Metadata is informational (sizes are checked against it when readable); the arrays
            # are validated on their own, so an unreadable pickle is reported, not fatal.
            import warnings

            warnings.warn(f"{name}: metadata ignored ({exc})", stacklevel=4)
    check_metadata_sizes(metadata, name)

    if classes.ndim != 2 or classes.shape[1] not in (5, 6) or classes.dtype.kind not in "iu":
        raise UserError(f"{name}: latents_classes must be an integer N x 6 (or N x 5) array, got {classes.dtype} {classes.shape}")
    n = classes.shape[0]
    full = n == NUM_IMAGES and classes.shape[1] == 6
    if require_full or full:
        check_latents(classes, values, name)
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
        bar = progress_bar(n, f"reading {Path(name).name}", progress)
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
            check_latents(classes.astype(np.int64) if classes.dtype.kind in "iu" else classes, values, name)
            packed = np.empty((NUM_IMAGES, PACKED_BYTES), dtype=np.uint8)
            bar = progress_bar(NUM_IMAGES, f"reading {Path(name).name}", progress)
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
        hit = read_cache(Path(path), blob)
        if hit is not None:
            return hit
    if suffix in (".hdf5", ".h5"):
        loaded = read_hdf5(path, progress=progress)
    else:
        loaded = read_npz(path, require_full=require_full, progress=progress)
    if blob is not None and loaded.full:
        write_loaded_cache(Path(path), blob, loaded)
    return loaded

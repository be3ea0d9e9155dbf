"""Atomic file writes: readers see the old file or the complete new one, never half of one.

Everything the project writes (data sets, subsets, checkpoints, configs, metrics.json, figures,
tables, sweep state) goes through this module, the only place that renames a file into place:
write to a temporary file in the same folder (same file system, so ``os.replace`` is atomic),
fsync, rename; on any error the temporary file is removed and an existing file at ``path`` is
left untouched. A write that fails for want of room or a working disk (ENOSPC, EDQUOT, EFBIG, EIO,
EROFS, also when a library wraps it) is a one-line ``UserError`` saying that the old file is kept.
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from dis_eval.errors import UserError

# mkstemp makes 0600 files; a written file gets the permissions open() would have given it.
_UMASK = os.umask(0)
os.umask(_UMASK)
TEMP_MARK = ".tmp-"  # temporary files are hidden and marked: ``.<name>.tmp-<pid>@<host>~<random><suffix>``
_OWNER_END = "~"


def _owner_tag() -> str:
    """Who writes a temporary file: its pid and host, so that only a dead writer's are removed."""
    import socket

    return f"{os.getpid()}@{socket.gethostname().replace('~', '-').replace('/', '-')}{_OWNER_END}"


def _temp_beside(path: Path, suffix: str) -> Path:
    """A new empty temporary file in ``path``'s folder (created when missing)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARK}{_owner_tag()}", suffix=suffix,
                                    dir=path.parent)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; choose another --out") from exc
    os.close(fd)
    return Path(name)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and move it onto ``path``.

    ``suffix`` lets writers that insist on an extension (numpy's ``.npz``, h5py) get one.
    The parent folder is created when missing.
    """
    path = Path(path)
    tmp = _temp_beside(path, suffix)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        _raise_write_failure(exc, path)
        raise


# The errors of a write that failed for want of room or a working disk: a one-line UserError.
WRITE_FAILURES = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS})


def _raise_write_failure(exc: BaseException, path: Path) -> None:
    """Raise a one-line UserError when ``exc`` (or what it wraps: torch and zipfile turn an
    OSError raised by the file into their own errors) is a failed write; else return."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None or not isinstance(seen, Exception) or isinstance(seen, UserError):
            return
        if isinstance(seen, OSError) and seen.errno in WRITE_FAILURES:
            kept = f"{path.name} was left as it was" if path.exists() else f"nothing was written at {path}"
            raise UserError(f"cannot write {path}: {seen.strerror or os.strerror(seen.errno)}; {kept}. "
                            "Free some space (or write elsewhere) and run the command again") from exc
        seen = seen.__cause__ or seen.__context__


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """``open(path, mode)`` that only replaces ``path`` once the block finishes without error."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', not {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode, encoding="utf-8" if mode == "w" else None) as fh:
        yield fh


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text)


# The key beside a value that JSON cannot hold: ``{"loss": null, "loss_undefined": "NaN ..."}``.
UNDEFINED_SUFFIX = "_undefined"


def _undefined_reason(value: float) -> str:
    if math.isnan(value):
        return "not a number (NaN) when computed"
    return f"{'+' if value > 0 else '-'}infinity when computed"


def strict_json_value(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, +-Infinity, also inside lists) replaced by
    ``null``, and a reason beside it: in a mapping, key ``<name>_undefined`` says what the value
    was (for a list, which entries); a reason the writer already put there is kept. Tuples
    become lists; nothing else changes. The result serialises with ``allow_nan=False``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        out: dict[Any, Any] = {}
        notes: dict[str, str] = {}
        for key, value in obj.items():
            out[key] = strict_json_value(value)
            reason = _reasons(value)
            if reason:
                notes[f"{key}{UNDEFINED_SUFFIX}"] = reason
        for key, reason in notes.items():
            out.setdefault(key, reason)
        return out
    if isinstance(obj, (list, tuple)):
        return [strict_json_value(v) for v in obj]
    return obj


def _reasons(value: Any) -> str | None:
    """Why a value (or entries of a list value) became null, or None when nothing did."""
    if isinstance(value, float) and not math.isfinite(value):
        return _undefined_reason(value)
    if isinstance(value, (list, tuple)):
        bad = [(i, v) for i, v in enumerate(value) if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            return "; ".join(f"entry {i}: {_undefined_reason(v)}" for i, v in bad)
    return None


def strict_json_dumps(obj: Any, **dumps_kwargs: Any) -> str:
    """JSON text with no ``NaN``/``Infinity`` token (see :func:`strict_json_value`): what every
    JSON file and ``--json`` output of the project is written with."""
    return json.dumps(strict_json_value(obj), allow_nan=False, **dumps_kwargs)


def atomic_write_json(path: str | os.PathLike, obj: Any, **dumps_kwargs: Any) -> None:
    """``obj`` as strict JSON (:func:`strict_json_dumps`, indented), atomically."""
    atomic_write_text(path, strict_json_dumps(obj, **({"indent": 2} | dumps_kwargs)) + "\n")


def atomic_create_json(path: str | os.PathLike, obj: Any) -> bool:
    """Create ``path`` holding ``obj`` only if nothing is there yet: an atomic create-if-absent
    whose content is complete from the first moment. True when created, False when it existed."""
    path = Path(path)
    tmp = _temp_beside(path, ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(strict_json_dumps(obj) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        try:
            os.link(tmp, path)  # fails when the target exists
        except FileExistsError:
            return False
        return True
    except Exception as exc:
        _raise_write_failure(exc, path)
        raise
    finally:
        tmp.unlink(missing_ok=True)


def remove_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed writers left in ``folder``; returns what was removed.

    Only a writer that is gone: a temporary file names its writer's pid and host, and one whose
    writer still runs on this host, or runs on another host (which this one cannot check), is
    kept. Any process may call this before writing into a folder."""
    import socket

    here = socket.gethostname().replace("~", "-").replace("/", "-")
    gone = []
    for p in Path(folder).glob(f".*{TEMP_MARK}*"):
        owner = p.name.split(TEMP_MARK, 1)[1]
        pid, at, host = owner.partition(_OWNER_END)[0].partition("@")
        if _OWNER_END in owner and at and pid.isdigit():
            if host != here or _alive(int(pid)):
                continue
        if p.is_file():
            p.unlink(missing_ok=True)
            gone.append(p)
    return gone


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

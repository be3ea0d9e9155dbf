"""File checksums: git blob ids, the only checksums of the official dSprites files anyone can
recompute (upstream publishes no other). One implementation, used by download, prepare and the
packed cache."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable


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

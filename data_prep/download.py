"""Download the official dSprites file, checksum-verified (git blob id), atomically."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from dis_eval.data.official import OFFICIAL_NPZ_BLOB_ID, OFFICIAL_URL
from dis_eval.errors import UserError

OFFLINE_HINT = "use --from FILE (the official .npz/.hdf5) or --render (draw the set on this machine)"


def download(
    dest: str | os.PathLike[str],
    url: str = OFFICIAL_URL,
    expected_blob_id: str = OFFICIAL_NPZ_BLOB_ID,
    timeout: float = 30.0,
    progress: bool = False,
) -> str:
    """Stream ``url`` to ``dest`` through a temp file, verify its git blob id, then rename.

    The blob id needs the size up front (``blob <size>\\0``), so the SHA-1 is computed after the
    download from the temp file. Returns the blob id. On any failure nothing is left at ``dest``.
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.download{os.getpid()}")
    try:
        try:
            resp = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - fixed https URL or test server
        except (TimeoutError, urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UserError(f"cannot download {url} ({reason}); {OFFLINE_HINT}") from exc
        try:
            out = open(tmp, "wb")
        except OSError as exc:
            resp.close()
            raise UserError(f"cannot write {dest}: {exc.strerror or exc}; choose another --out") from exc
        total = int(resp.headers.get("Content-Length") or 0) or None
        with resp, out, tqdm(total=total, desc="downloading dSprites", unit="B", unit_scale=True, disable=not progress, leave=False) as bar:
            try:
                while True:
                    buf = resp.read(1 << 20)
                    if not buf:
                        break
                    out.write(buf)
                    bar.update(len(buf))
            except (TimeoutError, OSError) as exc:
                raise UserError(f"download of {url} failed midway ({exc}); retry, or {OFFLINE_HINT}") from exc
        size = tmp.stat().st_size
        if total is not None and size != total:
            raise UserError(f"download of {url} is truncated ({size} of {total} bytes); retry, or {OFFLINE_HINT}")
        h = hashlib.sha1(b"blob %d\0" % size)
        with open(tmp, "rb") as f:
            for buf in iter(lambda: f.read(1 << 22), b""):
                h.update(buf)
        blob = h.hexdigest()
        if blob != expected_blob_id:
            raise UserError(f"downloaded file has git blob id {blob}, expected {expected_blob_id}; not the official dSprites file")
        os.replace(tmp, dest)
        return blob
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise

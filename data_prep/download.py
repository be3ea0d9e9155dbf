"""Download the official dSprites file, checksum-verified (git blob id), atomically."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from dis_eval.atomic import atomic_path
from dis_eval.data.official import OFFICIAL_NPZ_BLOB_ID, OFFICIAL_URL, git_blob_id
from dis_eval.errors import UserError

OFFLINE_HINT = "use --from FILE (the official .npz/.hdf5) or --render (draw the set on this machine)"


def download(
    dest: str | os.PathLike[str],
    url: str = OFFICIAL_URL,
    expected_blob_id: str = OFFICIAL_NPZ_BLOB_ID,
    timeout: float = 30.0,
    progress: bool = False,
) -> str:
    """Stream ``url`` to ``dest`` through a temp file beside it, verify its git blob id, then move it.

    The blob id needs the size up front (``blob <size>\\0``), so it is computed after the download,
    from the temp file. The temp file and the move are ``dis_eval.atomic.atomic_path``'s: on any
    failure nothing is created at ``dest`` (a file already there is left as it was). Returns the
    blob id.
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    try:
        resp = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - fixed https URL or test server
    except (TimeoutError, urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"cannot download {url} ({reason}); {OFFLINE_HINT}") from exc
    with resp, atomic_path(dest, suffix=".download") as tmp:
        total = int(resp.headers.get("Content-Length") or 0) or None
        with open(tmp, "wb") as out, tqdm(total=total, desc="downloading dSprites", unit="B",
                                           unit_scale=True, disable=not progress, leave=False) as bar:
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
        blob = git_blob_id(tmp)
        if blob != expected_blob_id:
            raise UserError(f"downloaded file has git blob id {blob}, expected {expected_blob_id}; not the official dSprites file")
    return blob

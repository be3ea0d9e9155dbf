"""Official file format, validation, download and `dis-eval prepare dsprites` bad-input handling.

The full-size round trip (render -> official npz -> prepare --from -> load_data) is in
test_data_render.py, which renders the set once.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import socket
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from data_prep.download import download
from dis_eval.data.official import (
    OFFICIAL_HDF5_BLOB_ID,
    OFFICIAL_NPZ_BLOB_ID,
    OFFICIAL_URL,
    git_blob_id,
    read_any,
    read_npz,
)
from dis_eval.errors import UserError
from pipelines.cli import main

FIXTURE = Path(__file__).parent / "data" / "dsprites_real_fixture.npz"


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_official_constants() -> None:
    assert OFFICIAL_URL == "https://github.com/deepmind/dsprites-dataset/raw/master/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    assert OFFICIAL_NPZ_BLOB_ID == "d98996d3f8ee1550e06b9d4ed78d0beb478910d5"
    assert OFFICIAL_HDF5_BLOB_ID == "3c8de5d40afa425dfd9de811d71248449aae238b"


def test_git_blob_id_matches_git(tmp_path: Path) -> None:
    p = tmp_path / "x"
    p.write_bytes(b"hello\n")
    # `printf 'hello\n' | git hash-object --stdin`
    assert git_blob_id(p) == "ce013625030ba8dba906f756967f9e9ca394464a"
    data = FIXTURE.read_bytes()
    assert git_blob_id(FIXTURE) == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _write(path: Path, **arrays: np.ndarray) -> Path:
    np.savez_compressed(path, **arrays)
    return path


def test_partial_file_validation(tmp_path: Path) -> None:
    with np.load(FIXTURE) as f:
        imgs, classes = f["imgs"][:20], f["latents_classes"][:20]
    ok = read_npz(_write(tmp_path / "ok.npz", imgs=imgs, latents_classes=classes))
    assert len(ok.indices) == 20 and ok.packed.shape == (20, 512) and not ok.full
    five = read_npz(_write(tmp_path / "five.npz", imgs=imgs, latents_classes=classes[:, 1:]))
    assert np.array_equal(five.indices, ok.indices)
    bad = {
        "wrongkey": ({"images": imgs, "latents_classes": classes}, "missing key"),
        "shape": ({"imgs": imgs[:, :32], "latents_classes": classes}, "imgs must be uint8"),
        "rows": ({"imgs": imgs[:10], "latents_classes": classes}, "imgs must be uint8"),
        "values": ({"imgs": imgs * 255, "latents_classes": classes}, "only 0 and 1"),
        "range": ({"imgs": imgs, "latents_classes": classes + 50}, "out of range"),
        "dupes": ({"imgs": imgs[[0, 0]], "latents_classes": classes[[0, 0]]}, "more than once"),
    }
    for name, (arrays, msg) in bad.items():
        with pytest.raises(UserError, match=msg):
            read_npz(_write(tmp_path / f"{name}.npz", **arrays))
    # a partial file is not the full set
    with pytest.raises(UserError, match="missing key"):
        read_npz(tmp_path / "ok.npz", require_full=True)
    meta = np.array({"latents_sizes": np.array([1, 3, 6, 40, 32, 32])}, dtype=object)
    small = _write(tmp_path / "small.npz", imgs=imgs, latents_classes=classes,
                   latents_values=classes.astype(np.float64), metadata=meta)
    with pytest.raises(UserError, match=r"latents_classes must be int64 \(737280, 6\)"):
        read_npz(small, require_full=True)
    meta_bad = np.array({"latents_sizes": np.array([1, 3, 6, 40, 16, 16])}, dtype=object)
    with pytest.raises(UserError, match="latents_sizes"):
        read_npz(_write(tmp_path / "meta.npz", imgs=imgs, latents_classes=classes, metadata=meta_bad))
    with pytest.raises(UserError, match="unknown file type"):
        read_any(tmp_path / "x.txt")


def test_truncated_and_corrupt_files(tmp_path: Path) -> None:
    data = FIXTURE.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.npz").write_bytes(b"not a zip" * 100)
    # a zip whose imgs member is cut short inside (valid directory, short stream)
    with zipfile.ZipFile(FIXTURE) as src, zipfile.ZipFile(tmp_path / "short.npz", "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            dst.writestr(info.filename, body[: len(body) // 3] if info.filename == "imgs.npy" else body)
    for name in ("trunc", "garbage", "short"):
        with pytest.raises(UserError) as exc:
            read_npz(tmp_path / f"{name}.npz")
        assert "\n" not in str(exc.value)
    (tmp_path / "bad.hdf5").write_bytes(b"\x89HDF\r\n" + b"0" * 100)
    with pytest.raises(UserError, match="HDF5"):
        read_any(tmp_path / "bad.hdf5")
    import h5py

    with h5py.File(tmp_path / "small.hdf5", "w") as f:
        f["imgs"] = np.zeros((2, 64, 64), np.uint8)
        f["latents/classes"] = np.zeros((2, 6), np.int64)
        f["latents/values"] = np.zeros((2, 6))
    with pytest.raises(UserError, match=r"imgs must be uint8 \(737280, 64, 64\)"):
        read_any(tmp_path / "small.hdf5")
    with h5py.File(tmp_path / "nokey.hdf5", "w") as f:
        f["images"] = np.zeros((2, 64, 64), np.uint8)
    with pytest.raises(UserError, match="missing dataset 'imgs'"):
        read_any(tmp_path / "nokey.hdf5")


def test_prepare_from_rejects_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    data = FIXTURE.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    _write(tmp_path / "wrongkey.npz", images=np.zeros((2, 64, 64), np.uint8), latents_classes=np.zeros((2, 6), np.int64))
    meta = np.array({"latents_sizes": np.array([1, 3, 6, 40, 32, 32])}, dtype=object)
    _write(tmp_path / "small.npz", imgs=np.zeros((2, 64, 64), np.uint8), latents_classes=np.zeros((2, 6), np.int64),
           latents_values=np.zeros((2, 6)), metadata=meta)
    cases = [
        ([str(FIXTURE)], "git blob id"),  # wrong checksum: not the official file
        ([str(tmp_path / "trunc.npz")], "git blob id"),
        ([str(tmp_path / "trunc.npz"), "--skip-checksum"], "truncated or corrupt"),
        ([str(tmp_path / "wrongkey.npz"), "--skip-checksum"], "missing key"),
        ([str(FIXTURE), "--skip-checksum"], "missing key"),  # partial file: no metadata
        ([str(tmp_path / "small.npz"), "--skip-checksum"], "latents_classes must be int64"),  # mis-shaped
        ([str(tmp_path / "nothere.npz")], "no such file"),
        ([str(tmp_path / "x.csv")], "no such file"),
    ]
    for argv, msg in cases:
        code = main(["prepare", "dsprites", "--quiet", "--out", str(out), "--from", *argv])
        assert code == 2
        assert msg in _one_line_error(capsys)
    assert list(out.iterdir()) == []


def test_prepare_unwritable_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    code = main(["prepare", "dsprites", "--quiet", "--render", "--out", str(blocker / "sub" / "d.npz")])
    assert code == 2 and "choose another --out" in _one_line_error(capsys)
    code = main(["prepare", "dependent", "--quiet", "--preset", "authors", "--out", str(blocker / "d.h5")])
    assert code == 2 and "choose another --out" in _one_line_error(capsys)
    assert [p.name for p in tmp_path.iterdir()] == ["afile"]


@pytest.fixture()
def http_dir(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_download_verifies_checksum(http_dir: tuple[str, Path], tmp_path: Path) -> None:
    url, root = http_dir
    shutil.copy(FIXTURE, root / "d.npz")
    dest = tmp_path / "got.npz"
    blob = download(dest, url=f"{url}/d.npz", expected_blob_id=git_blob_id(FIXTURE), timeout=10)
    assert blob == git_blob_id(FIXTURE) and dest.read_bytes() == FIXTURE.read_bytes()
    dest.unlink()
    with pytest.raises(UserError, match="expected d98996"):
        download(dest, url=f"{url}/d.npz", timeout=10)  # the official id: this file is not it
    with pytest.raises(UserError, match="--from"):
        download(dest, url=f"{url}/missing.npz", timeout=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["www"]


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_download_offline_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/dsprites.npz"
    code = main(["prepare", "dsprites", "--quiet", "--download", "--url", url, "--out", str(tmp_path)])
    assert code == 2
    err = _one_line_error(capsys)
    assert "--from" in err and "--render" in err
    assert list(tmp_path.iterdir()) == []


def test_sources_tried_in_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/dsprites.npz"
    code = main(["prepare", "dsprites", "--quiet", "--from", str(FIXTURE), "--download", "--url", url,
                 "--out", str(tmp_path / "d.npz")])
    captured = capsys.readouterr()
    assert code == 2
    assert "--from" in captured.out and "failed" in captured.out and "trying --download" in captured.out
    assert "cannot download" in captured.err
    assert list(tmp_path.iterdir()) == []


class _Planted:
    """Pickles to a call that would create a file if the metadata were unpickled blindly."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.path,))


def test_metadata_pickle_is_restricted(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    with np.load(FIXTURE) as f:
        arrays = {"imgs": f["imgs"][:3], "latents_classes": f["latents_classes"][:3]}
    np.savez(tmp_path / "evil.npz", metadata=np.array(_Planted(marker), dtype=object), **arrays)
    with pytest.raises(UserError, match=r"evil.npz: refused: a pickle in it names pathlib.*Path.touch"):
        read_npz(tmp_path / "evil.npz")  # a crafted file is refused, not used with its metadata ignored
    assert not marker.exists()

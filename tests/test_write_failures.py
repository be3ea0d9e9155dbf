"""A full disk (issue 17, item 4): when writing checkpoint.pt, metrics.json or prepared data fails
with ENOSPC, the previous file survives, the user gets a one-line error (exit status 2) and no
temporary file is left behind."""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import dis_eval.atomic as atomic
import dis_eval.data.official.write as official_write
from dis_eval.atomic import TEMP_MARK
from dis_eval.data.official.format import CHUNK_IMAGES, PACKED_BYTES
from dis_eval.errors import UserError
from dis_eval.run_dir import RunDir
from pipelines.cli import main as cli
from tests.safety_helpers import (
    CHEAP_METRICS,
    TINY_CONFIG,
    same_tensors,
    state_dict_of,
    tiny_overrides,
)


class _FullDisk(io.RawIOBase):
    """A file that accepts ``room`` bytes, then fails like a full disk."""

    def __init__(self, inner: Any, room: int) -> None:
        self.inner, self.room = inner, room

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        n = len(memoryview(b))
        if n > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= n
        return self.inner.write(b)

    def seek(self, *a: Any) -> int:
        return self.inner.seek(*a)

    def tell(self) -> int:
        return self.inner.tell()

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        self.inner.close()
        super().close()


def fill_disk_on(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, after_calls: int = 0,
                 room: int = 1000) -> None:
    """Writes to the temporary files of ``name`` opened through ``module``'s ``open``, from the
    ``after_calls``-th on, hit a full disk after ``room`` bytes."""
    calls = {"n": 0}

    def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        fh = builtins.open(file, mode, *args, **kwargs)
        if "w" not in mode or not Path(file).name.startswith(f".{name}{TEMP_MARK}"):
            return fh
        calls["n"] += 1
        if calls["n"] <= after_calls:
            return fh
        if "b" in mode:
            return _FullDisk(fh, room)
        return io.TextIOWrapper(io.BufferedWriter(_FullDisk(fh.buffer, room)), encoding="utf-8")

    monkeypatch.setattr(module, "open", fake_open, raising=False)


def _no_temporaries(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if TEMP_MARK in p.name]


def _one_line_error(capsys: pytest.CaptureFixture, *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert "No space left on device" in err and all(w in err for w in words), err
    return err


def test_checkpoint_write_fails_previous_checkpoint_survives_and_resume_finishes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    ref, out = tmp_path / "ref", tmp_path / "run"
    args = ["train", str(TINY_CONFIG), *tiny_overrides(steps=4, every=2), "--quiet"]
    assert cli([*args, "--out", str(ref)]) == 0
    with monkeypatch.context() as m:
        fill_disk_on(m, atomic, "checkpoint.pt", after_calls=1)  # step 2 is written, step 4 is not
        assert cli([*args, "--out", str(out)]) == 2
    _one_line_error(capsys, "checkpoint.pt was left as it was")
    run = RunDir(out)
    assert not run.model.exists() and not run.lock_file.read_text()
    from dis_eval.models.checkpoint import load_checkpoint

    assert load_checkpoint(run.checkpoint)["step"] == 2  # the previous checkpoint, intact
    _no_temporaries(out)
    assert cli(["train", "--resume", str(out), "--quiet"]) == 0
    assert same_tensors(state_dict_of(run.model), state_dict_of(RunDir(ref).model))


def test_metrics_write_fails_previous_metrics_survive(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from tests.safety_helpers import train_tiny

    run = RunDir(train_tiny(tmp_path / "run", steps=2, every=2))
    assert cli(["evaluate", str(run.path), *CHEAP_METRICS["mig"]]) == 0
    before = run.metrics.read_bytes()
    with monkeypatch.context() as m:
        fill_disk_on(m, atomic, "metrics.json")
        assert cli(["evaluate", str(run.path), *CHEAP_METRICS["unsupervised"]]) == 2
    _one_line_error(capsys, "metrics.json was left as it was")
    assert run.metrics.read_bytes() == before
    _no_temporaries(run.path)


def test_prepared_subset_write_fails_at_fsync_previous_file_survives(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "subset.h5"
    args = ["prepare", "dependent", "--preset", "authors", "--out", str(out), "--quiet"]
    assert cli(args) == 0
    before = out.read_bytes()

    def full_disk_fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as m:  # delayed allocation: a full disk shows at fsync
        m.setattr(atomic.os, "fsync", full_disk_fsync)
        assert cli(args) == 2
    _one_line_error(capsys, "subset.h5 was left as it was")
    assert out.read_bytes() == before
    _no_temporaries(tmp_path)


def test_prepared_full_set_write_fails_previous_file_survives(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "dsprites.npz"
    out.write_bytes(b"the previous prepared file")
    chunks = (np.zeros((CHUNK_IMAGES, PACKED_BYTES), np.uint8) for _ in range(4))
    fill_disk_on(monkeypatch, official_write, "dsprites.npz", room=200_000)
    with pytest.raises(UserError, match=r"cannot write .*dsprites.npz: No space left on device; "
                                        r"dsprites.npz was left as it was"):
        official_write.write_npz(out, chunks, source="test")
    assert out.read_bytes() == b"the previous prepared file"
    _no_temporaries(tmp_path)


def test_a_first_write_that_fails_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fill_disk_on(monkeypatch, atomic, "new.json")
    with pytest.raises(UserError, match="nothing was written at"):
        atomic.atomic_write_json(tmp_path / "new.json", {"x": "y" * 5000})
    assert list(tmp_path.iterdir()) == []

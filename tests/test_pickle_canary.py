"""Pickle canaries (issue 17, item 5): a crafted pickle whose ``__reduce__`` would create a canary
file is placed in every file the project loads (official-format dSprites metadata and arrays,
the prepared data file, checkpoint.pt, model.pt, codes files, factors files, an encoder weights
file); the canary must never appear and the user gets a one-line error (exit status 2)."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.cli import main as cli
from tests.safety_helpers import FIXTURE, TINY_CONFIG, train_tiny


class Canary:
    """Unpickling this creates the file ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple:
        return (open, (self.path, "w"))


def _npy(obj: object) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array(obj, dtype=object), allow_pickle=True)
    return buf.getvalue()


def _official_with(path: Path, member: str, payload: bytes) -> Path:
    """The real-image fixture (official format) with ``member`` replaced by ``payload``."""
    with zipfile.ZipFile(FIXTURE) as zin, zipfile.ZipFile(path, "w") as zout:
        for item in zin.infolist():
            if item.filename != member:
                zout.writestr(item, zin.read(item))
        zout.writestr(member, payload)
    return path


def _expect_refused(argv: list[str], canary: Path, capsys: pytest.CaptureFixture) -> str:
    rc = cli(argv)
    err = capsys.readouterr().err.strip()
    assert not canary.exists(), f"the payload ran: {argv}"
    assert rc == 2, (argv, err)
    lines = [line for line in err.splitlines() if not line.startswith("notice: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return err


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("canary") / "run", steps=2, every=2)


@pytest.mark.parametrize("member", ["metadata.npy", "latents_classes.npy"])
def test_official_format_file_with_a_pickle_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                       member: str) -> None:
    canary = tmp_path / "canary"
    data = _official_with(tmp_path / "dsprites.npz", member, _npy(Canary(canary)))
    err = _expect_refused(["train", str(TINY_CONFIG), f"data={data}", "--out", str(tmp_path / "run"), "--quiet"],
                          canary, capsys)
    assert "dsprites.npz" in err
    assert not (tmp_path / "run" / "model.pt").exists()


def test_prepared_data_file_with_a_pickle_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    from dis_eval.data import PREPARED_NAME

    canary = tmp_path / "canary"
    _official_with(tmp_path / PREPARED_NAME, "metadata.npy", _npy(Canary(canary)))
    monkeypatch.setenv("DIS_EVAL_DATA", str(tmp_path))
    codes = tmp_path / "codes.npz"
    np.savez(codes, codes=np.zeros((3000, 2)))
    _expect_refused(["score", str(codes), "--data", "dsprites", "--metrics", "mig"], canary, capsys)


@pytest.mark.parametrize("target", ["checkpoint.pt", "model.pt"])
def test_checkpoint_and_model_files_with_a_pickle_are_refused(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture, target: str) -> None:
    canary = tmp_path / "canary"
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    blob = torch.load(run / target, weights_only=True)
    blob["extra"] = Canary(canary)
    torch.save(blob, run / target)
    if target == "checkpoint.pt":
        (run / "model.pt").unlink()
        _expect_refused(["train", "--resume", str(run), "--quiet"], canary, capsys)
    _expect_refused(["evaluate", str(run), "--metrics", "mig"], canary, capsys)
    _expect_refused(["plot", str(run), "--quiet"], canary, capsys)


@pytest.mark.parametrize("key", ["codes", "rows", "family", "aux"])
def test_codes_files_with_a_pickle_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture, key: str) -> None:
    canary = tmp_path / "canary"
    arrays = {"codes": np.zeros((64, 2))}
    f = tmp_path / "codes.npz"
    with zipfile.ZipFile(f, "w") as zf:
        for k, v in arrays.items():
            if k != key:
                buf = io.BytesIO()
                np.save(buf, v)
                zf.writestr(f"{k}.npy", buf.getvalue())
        zf.writestr(f"{key}.npy", _npy(Canary(canary)))
    factors = tmp_path / "factors.npz"
    np.savez(factors, factors=np.zeros((64, 2), dtype=np.int64))
    _expect_refused(["score", str(f), "--factors", str(factors), "--metrics", "mig"], canary, capsys)


@pytest.mark.parametrize("key", ["factors", "factor_names"])
def test_factors_files_with_a_pickle_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture, key: str) -> None:
    canary = tmp_path / "canary"
    factors = tmp_path / "factors.npz"
    with zipfile.ZipFile(factors, "w") as zf:
        if key != "factors":
            buf = io.BytesIO()
            np.save(buf, np.zeros((64, 2), dtype=np.int64))
            zf.writestr("factors.npy", buf.getvalue())
        zf.writestr(f"{key}.npy", _npy(Canary(canary)))
    codes = tmp_path / "codes.npz"
    np.savez(codes, codes=np.zeros((64, 2)))
    _expect_refused(["score", str(codes), "--factors", str(factors), "--metrics", "mig"], canary, capsys)


def test_encoder_weights_file_with_a_pickle_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    canary = tmp_path / "canary"
    weights = tmp_path / "encoder.pt"
    torch.save({"weights": Canary(canary)}, weights)
    _expect_refused(["evaluate", "--encoder", str(weights), "--data", str(FIXTURE), "--metrics", "mig"],
                    canary, capsys)


def test_the_canary_payload_does_run_when_unpickled(tmp_path: Path) -> None:
    """The payload is live: plain pickle (what the loaders avoid) creates the canary."""
    import pickle

    canary = tmp_path / "canary"
    pickle.loads(pickle.dumps(Canary(canary))).close()
    assert canary.exists()

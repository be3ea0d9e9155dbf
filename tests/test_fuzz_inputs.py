"""Bad input never gives a traceback (issue 17, item 5): property-based tests (Hypothesis) over the
override parser (train overrides, evaluate --set, sweep --set and `set:`), sweep YAML files,
config YAML files, codes and factors files for `dis-eval score`, and damaged checkpoint.pt /
model.pt files. Every case ends either in success or in a one-line error with exit status 2,
and a failing case writes nothing.

Budget: every property runs ``max_examples`` cases (stated per test, 400 in all), derandomized
(the same cases on every run: CI is reproducible); no deadline (the machine may be loaded).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dis_eval.config.train import TrainConfig
from dis_eval.errors import UserError
from pipelines.cli import main as cli
from tests.safety_helpers import TINY_CONFIG, run_cli, train_tiny

FUZZ = settings(derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# YAML-ish scalars and structures, and text that is not YAML at all.
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
yaml_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                           max_leaves=8)
junk_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60)
yamlish = st.one_of(junk_text, st.sampled_from(["[1,", "{a: ", "]", "&a *b", "!!python/object:os.system", ": :",
                                                "- - -", "'unterminated", "\t", "%YAML 9"]))
KEYS = ["beta", "steps", "seed", "lr", "model", "latents", "batch_size", "data", "subset", "device",
        "checkpoint_every", "gamma", "lambda", "nonsense", ""]


def _value_text(v: Any) -> str:
    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()


def outcome(argv: list[str], capsys: pytest.CaptureFixture) -> int:
    """``dis-eval ARGV`` in this process: success, or a one-line error with status 2."""
    rc = cli(argv)
    err = capsys.readouterr().err.strip()
    assert rc in (0, 2), (rc, err)
    if rc == 2:
        lines = [line for line in err.splitlines() if not line.startswith("notice: ")]
        assert len(lines) == 1 and lines[0].startswith("error: "), err
    return rc


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


# ---- overrides --------------------------------------------------------------------------------
override_items = st.one_of(
    st.builds(lambda k, v: f"{k}={_value_text(v)}", st.sampled_from(KEYS), yaml_values),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), yamlish),
    junk_text,
)


@settings(FUZZ, max_examples=80)
@given(items=st.lists(override_items, min_size=1, max_size=3))
def test_train_overrides_are_a_config_or_a_one_line_error(items: list[str]) -> None:
    try:
        TrainConfig.load(TINY_CONFIG, items)
    except UserError as exc:
        assert "\n" not in str(exc)


@settings(FUZZ, max_examples=60)
@given(item=st.one_of(
    st.builds(lambda m, k, v: f"{m}.{k}={v}", st.sampled_from(["mig", "sap", "factor_vae", "nope", ""]),
              st.sampled_from(["num_train", "num_bins", "batch_size", "x", ""]), yamlish | st.builds(_value_text, yaml_values)),
    junk_text))
def test_evaluate_set_is_a_one_line_error(item: str, tmp_path_factory: pytest.TempPathFactory,
                                          capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path_factory.getbasetemp() / "no-such-run"
    assert outcome(["evaluate", str(missing), f"--set={item}"], capsys) == 2
    assert not missing.exists()


SWEEP_BASE = {"name": "fuzz", "base": str(TINY_CONFIG), "grid": {"seed": [0, 1]}}


@settings(FUZZ, max_examples=40)
@given(set_block=st.dictionaries(st.sampled_from(KEYS), yaml_values, max_size=3),
       flag=st.lists(override_items, max_size=2))
def test_sweep_set_and_set_flag_list_or_fail_in_one_line(set_block: dict, flag: list[str], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({**SWEEP_BASE, "set": set_block}))
    outcome(["sweep", str(f), "--out", str(tmp_path / "out"), "--list", *(f"--set={i}" for i in flag)], capsys)
    assert not (tmp_path / "out").exists()


# ---- whole files ------------------------------------------------------------------------------
sweep_files = st.one_of(
    yamlish,
    st.builds(lambda v: yaml.safe_dump(v), yaml_values),
    st.builds(lambda extra: yaml.safe_dump({**SWEEP_BASE, **extra}),
              st.dictionaries(st.sampled_from(["name", "base", "set", "grid", "include", "evaluation", "notes", "x"]),
                              yaml_values, max_size=3)),
)


@settings(FUZZ, max_examples=40)
@given(text=sweep_files)
def test_sweep_files_list_or_fail_in_one_line(text: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(text)
    outcome(["sweep", str(f), "--out", str(tmp_path / "out"), "--list"], capsys)
    assert not (tmp_path / "out").exists()


config_files = st.one_of(
    yamlish,
    st.builds(lambda v: yaml.safe_dump(v), yaml_values),
    st.builds(lambda extra: yaml.safe_dump({**yaml.safe_load(TINY_CONFIG.read_text()), **extra}),
              st.dictionaries(st.sampled_from(KEYS), yaml_values, max_size=3)),
)


@settings(FUZZ, max_examples=80)
@given(text=config_files)
def test_config_files_load_or_fail_in_one_line(text: str, tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    try:
        TrainConfig.load(f)
    except UserError as exc:
        assert "\n" not in str(exc)


# ---- codes files for `dis-eval score` ---------------------------------------------------------
N_ROWS = 64
DTYPES = [np.float32, np.float64, np.int64, np.uint8, np.bool_, np.complex64, np.float16, "U3", "S2", "m8[s]"]


def _factors_file(folder: Path) -> Path:
    path = folder / "factors.npz"
    if not path.exists():
        rng = np.random.default_rng(0)
        np.savez(path, factors=rng.integers(0, 4, size=(N_ROWS, 2)))
    return path


codes_arrays = st.one_of(
    st.builds(lambda shape, dtype, fill: np.full(shape, fill).astype(dtype) if fill is not None
              else np.random.default_rng(1).normal(size=shape).astype(dtype),
              st.sampled_from([(N_ROWS, 3), (N_ROWS,), (N_ROWS, 0), (0, 3), (N_ROWS - 1, 3), (N_ROWS, 3, 2), (), (1, 1)]),
              st.sampled_from(DTYPES), st.sampled_from([None, np.nan, np.inf, -np.inf, 0.0, 1e308])),
    st.builds(lambda pos, bad: _with(np.random.default_rng(2).normal(size=(N_ROWS, 3)), pos, bad),
              st.integers(0, N_ROWS * 3 - 1), st.sampled_from([np.nan, np.inf, -np.inf])),
)


def _with(a: np.ndarray, pos: int, bad: float) -> np.ndarray:
    a.flat[pos] = bad
    return a


@settings(FUZZ, max_examples=50)
@given(codes=codes_arrays, extra=st.sampled_from([{}, {"rows": np.arange(N_ROWS)}, {"rows": np.zeros(N_ROWS, int)},
                                                  {"family": np.array("echo")}, {"aux": np.zeros((2, 2))}]))
def test_codes_files_score_or_fail_in_one_line(codes: np.ndarray, extra: dict, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    f = tmp_path / "codes.npz"
    np.savez(f, codes=codes, **extra)
    rc = outcome(["score", str(f), "--factors", str(_factors_file(tmp_path)), "--metrics", "mig",
                  "--set", "mig.num_train=32"], capsys)
    if codes.dtype.kind in "fc" and codes.size and not np.isfinite(codes).all():
        assert rc == 2  # NaN or Inf codes are refused, not scored


@pytest.mark.parametrize("case", ["object", "truncated", "random", "empty", "npy", "dir", "no-codes", "pickle-in-zip"])
def test_bad_codes_files_are_one_line_errors(case: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = tmp_path / "codes.npz"
    good = io.BytesIO()
    np.savez(good, codes=np.zeros((N_ROWS, 3)))
    if case == "object":
        np.savez(f, codes=np.array([{"a": 1}] * N_ROWS, dtype=object))
    elif case == "truncated":
        f.write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    elif case == "random":
        f.write_bytes(np.random.default_rng(3).bytes(4000))
    elif case == "empty":
        f.write_bytes(b"")
    elif case == "npy":
        np.save(f.with_suffix(".npy"), np.zeros((N_ROWS, 3)))
        f.with_suffix(".npy").rename(f)
    elif case == "dir":
        f.mkdir()
    elif case == "no-codes":
        np.savez(f, other=np.zeros(3))
    elif case == "pickle-in-zip":
        with zipfile.ZipFile(f, "w") as zf:
            zf.writestr("codes.npy", b"\x80\x04K\x01.")  # a pickle, not an .npy
    before = listing(tmp_path)
    assert outcome(["score", str(f), "--factors", str(_factors_file(tmp_path)), "--metrics", "mig"], capsys) == 2
    assert listing(tmp_path) == before | {"factors.npz"}


@settings(FUZZ, max_examples=50)
@given(cut=st.integers(0, 10_000), junk=st.binary(max_size=200))
def test_damaged_codes_files_are_one_line_errors(cut: int, junk: bytes, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    buf = io.BytesIO()
    np.savez(buf, codes=np.random.default_rng(0).normal(size=(N_ROWS, 3)))
    data = buf.getvalue()
    f = tmp_path / "codes.npz"
    f.write_bytes(data[: cut % len(data)] + junk)
    outcome(["score", str(f), "--factors", str(_factors_file(tmp_path)), "--metrics", "mig",
             "--set", "mig.num_train=32"], capsys)


# ---- damaged checkpoint.pt / model.pt ---------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("fuzz-runs")
    return {"beta_vae": train_tiny(base / "vae", steps=2, every=2),
            "echo": train_tiny(base / "echo", model="echo", steps=2, every=2)}


def _damaged_copy(run: Path, dest: Path, name: str, payload: bytes) -> Path:
    shutil.copytree(run, dest)
    (dest / name).write_bytes(payload)
    for f in ("metrics.json",):
        (dest / f).unlink(missing_ok=True)
    return dest


def _payloads(runs: dict[str, Path], name: str) -> dict[str, bytes]:
    import torch

    own = (runs["beta_vae"] / name).read_bytes()
    other_model = (runs["echo"] / name).read_bytes()
    buf = io.BytesIO()
    torch.save({"config": {"model": "beta_vae", "latents": 3}, "state_dict": {"w": torch.zeros(2)}, "model": {}}, buf)
    wrong_arch = buf.getvalue()
    tensor = io.BytesIO()
    torch.save(torch.zeros(3), tensor)
    return {"truncated": own[: len(own) // 3], "empty": b"", "random": np.random.default_rng(4).bytes(5000),
            "another model": other_model, "another architecture": wrong_arch, "a tensor": tensor.getvalue()}


@pytest.mark.parametrize("case", ["truncated", "empty", "random", "another model", "another architecture", "a tensor"])
@pytest.mark.parametrize("target", ["model.pt", "checkpoint.pt"])
def test_damaged_model_and_checkpoint_files_are_one_line_errors(
        runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture, target: str, case: str) -> None:
    run = _damaged_copy(runs["beta_vae"], tmp_path / "run", target, _payloads(runs, target)[case])
    if target == "checkpoint.pt":
        (run / "model.pt").unlink()  # an interrupted run: evaluate falls back to the checkpoint
        (run / "summary.json").write_text('{"status": "running", "step": 1}')
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    commands = [["evaluate", str(run), "--metrics", "mig"], ["plot", str(run), "--quiet"]]
    if target == "checkpoint.pt":
        commands.append(["train", "--resume", str(run), "--quiet"])
    for argv in commands:
        assert outcome(argv, capsys) == 2, argv
        after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
        assert after == before, f"{argv} wrote {sorted(map(str, set(after) ^ set(before)))}"


# ---- the three tracebacks of the issue, through a real process --------------------------------
def test_the_issues_three_tracebacks_are_one_line_errors(runs: dict[str, Path], tmp_path: Path) -> None:
    run = _damaged_copy(runs["beta_vae"], tmp_path / "run", "checkpoint.pt", b"PK\x03\x04 truncated")
    codes = tmp_path / "codes.npz"
    np.savez(codes, codes=np.array([object()] * 3, dtype=object))
    for args in (["evaluate", str(runs["beta_vae"]), "--set", "mig.num_bins=[1,"],
                 ["train", "--resume", str(run)],
                 ["score", str(codes)]):
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr
    assert isinstance(subprocess.CompletedProcess, type)

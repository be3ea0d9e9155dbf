"""Figure and GIF files: written through dis_eval.atomic (no temporaries left, an old file kept
when drawing fails), in every requested format, the figure closed afterwards."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from dis_eval.atomic import TEMP_MARK
from dis_eval.plots.common import save_figure, save_gif


def test_save_figure_formats_and_close(tmp_path: Path) -> None:
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    paths = save_figure(fig, tmp_path / "sub" / "fig")
    assert paths == [tmp_path / "sub" / "fig.png", tmp_path / "sub" / "fig.pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[1].read_bytes()[:5] == b"%PDF-"
    assert not plt.fignum_exists(fig.number)
    assert not list((tmp_path / "sub").glob(f"*{TEMP_MARK}*"))


def test_save_figure_failure_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fig.png").write_bytes(b"old")
    fig, _ = plt.subplots()

    def broken(*args: object, **kwargs: object) -> None:
        Path(args[0]).write_bytes(b"half")  # type: ignore[arg-type]
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(RuntimeError, match="drawing failed"):
        save_figure(fig, tmp_path / "fig", formats=("png",))
    assert (tmp_path / "fig.png").read_bytes() == b"old"
    assert not plt.fignum_exists(fig.number)
    assert not list(tmp_path.glob(f"*{TEMP_MARK}*"))


def test_save_gif(tmp_path: Path) -> None:
    frames = [np.full((8, 8, 3), v, dtype=np.uint8) for v in (0, 128, 255)]
    path = save_gif(frames, tmp_path / "anim.gif", duration_ms=100)
    assert path == tmp_path / "anim.gif"
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == 3
    assert not list(tmp_path.glob(f"*{TEMP_MARK}*"))

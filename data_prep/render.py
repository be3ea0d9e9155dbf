"""A faithful dSprites renderer; its specification and measured accuracy are docs/renderer.md.

Geometry, in pixels of the 64x64 image, y pointing down, pixel (i, j) sampled at its centre
(j + 0.5, i + 0.5): the sprite centre is (16 + 32 posX, 16 + 32 posY); a shape point (u, v)
at scale 1 and orientation 0 goes to x = cx + s (u cos t + v sin t), y = cy + s (-u sin t + v cos t)
(counter-clockwise on screen). A pixel is on when its centre is inside the shape.

* square: half-side 9.6 s. Vertices are rounded to 1/256 px and every edge test is done in exact
  integer arithmetic on that grid, with OpenGL's top-left tie rule with y flipped (a centre on an
  edge is inside for left edges and for horizontal edges with the inside above them). This
  reproduces all but 4 of 21,582 real squares bit for bit (docs/renderer.md, "Squares").
* ellipse: semi-axes 12.7625 s (u) and 7.2166 s (v), a smooth ellipse (docs/renderer.md, "Ellipses").
* heart: the measured 434-vertex outline (``assets/heart_outline_scale1_px.csv``), star-shaped
  about the origin, filled by point sampling (docs/renderer.md, "Hearts").

Everything is vectorised over many images. Squares and ellipses are solved per image row as an
interval of columns; hearts are tested per pixel inside a window around the sprite. Rows are
built as 64-bit masks, so the output is directly the bit-packed layout (np.packbits order,
512 bytes an image).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np

from dis_eval.data.factors import (
    IMAGE_SIZE,
    NUM_IMAGES,
    PACKED_BYTES,
    index_to_classes,
    latent_possible_values,
)

SQUARE_HALF_SIDE = 9.6  # 0.3 * 64 / 2
ELLIPSE_A = 12.7625  # semi-axis along u (horizontal at orientation 0)
ELLIPSE_B = 7.2166  # semi-axis along v
SUBPIXEL = 256  # vertex snapping grid of the GPU rasteriser (1/256 px)
CHUNK = 8192  # images per vectorised batch

_U64 = np.uint64
_COLS = np.arange(IMAGE_SIZE, dtype=np.int64)


@lru_cache(maxsize=1)
def heart_outline() -> np.ndarray:
    """The heart outline (434, 2) at scale 1, sorted by angle about the origin (closed, CCW in (u, v))."""
    path = Path(__file__).resolve().parent / "assets" / "heart_outline_scale1_px.csv"  # package data
    pts = np.loadtxt(path, delimiter=",", comments="#", dtype=np.float64)
    ang = np.arctan2(pts[:, 1], pts[:, 0])
    start = int(np.argmin(ang))
    pts = np.roll(pts, -start, axis=0)
    ang = np.arctan2(pts[:, 1], pts[:, 0])
    if not np.all(np.diff(ang) > 0):
        raise RuntimeError("heart outline is not star-shaped about the origin in angular order")
    return pts


@lru_cache(maxsize=1)
def _heart_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Edge endpoints (closed), vertex angles, and a uniform-angle lookup to the edge index."""
    pts = heart_outline()
    a = np.vstack([pts, pts[:1]])  # closed polygon: edge k runs a[k] -> a[k+1]
    ang = np.arctan2(pts[:, 1], pts[:, 0])
    # Edge k spans angles [ang[k], ang[k+1]); the last edge wraps around through +-pi.
    nb = 8192
    edges_of_bins = np.searchsorted(ang, -np.pi + (np.arange(nb) * (2 * np.pi / nb)), side="right") - 1
    return a, ang, edges_of_bins % len(pts), np.array([nb], dtype=np.int64)


def _geometry(classes: np.ndarray) -> tuple[np.ndarray, ...]:
    values = latent_possible_values()
    s = values["scale"][classes[:, 1]]
    t = values["orientation"][classes[:, 2]]
    cx = 16.0 + 32.0 * values["posX"][classes[:, 3]]
    cy = 16.0 + 32.0 * values["posY"][classes[:, 4]]
    return s, np.cos(t), np.sin(t), cx, cy


def _rows_from_intervals(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Row masks (n, 64) uint64 with columns lo..hi set (pixel j at bit 63 - j); empty if lo > hi."""
    lo = np.clip(lo, 0, IMAGE_SIZE - 1)
    hi = np.clip(hi, -1, IMAGE_SIZE - 1)
    width = np.clip(hi - lo + 1, 0, IMAGE_SIZE - 1).astype(_U64)  # a full 64-px row never occurs
    ones = (_U64(1) << width) - _U64(1)
    shift = np.where(width > 0, (IMAGE_SIZE - 1) - hi, 0).astype(_U64)
    return ones << shift


def _ceil_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return -((-a) // b)


def _square_rows(classes: np.ndarray) -> np.ndarray:
    """Squares: per row, the column interval allowed by the 4 edges, in exact integer arithmetic."""
    n = len(classes)
    s, c, sn, cx, cy = _geometry(classes)
    h = SQUARE_HALF_SIDE
    corners = np.array([[-h, -h], [h, -h], [h, h], [-h, h]])  # (u, v), consistent winding
    u = corners[None, :, 0] * s[:, None]
    v = corners[None, :, 1] * s[:, None]
    x = cx[:, None] + u * c[:, None] + v * sn[:, None]
    y = cy[:, None] - u * sn[:, None] + v * c[:, None]
    X = np.rint(x * SUBPIXEL).astype(np.int64)  # (n, 4) snapped vertices, 1/256 px units
    Y = np.rint(y * SUBPIXEL).astype(np.int64)
    X2, Y2 = np.roll(X, -1, axis=1), np.roll(Y, -1, axis=1)
    dx, dy = X2 - X, Y2 - Y
    # Orientation of the snapped polygon: make the inside the positive side of every edge function
    # E(P) = dx (Py - Ay) - dy (Px - Ax).
    area2 = np.sum(X * Y2 - X2 * Y, axis=1)
    sgn = np.where(area2 > 0, 1, -1)[:, None]
    nx = -sgn * dy  # inside normal (nx, ny) = sgn * (-dy, dx)
    ny = sgn * dx
    inclusive = (nx > 0) | ((nx == 0) & (ny < 0))  # left edges and "bottom" edges (y down)
    Py = (_COLS * SUBPIXEL + SUBPIXEL // 2)[None, None, :]  # row centres (1, 1, 64)
    # E'(P) = c0 + nx * Px with Px = 256 j + 128; inside iff E' > 0 (or >= 0 when inclusive).
    c0 = sgn[:, :, None] * dx[:, :, None] * (Py - Y[:, :, None]) + (sgn * dy * X)[:, :, None]
    nx3, inc3 = nx[:, :, None], inclusive[:, :, None]
    q = -c0 - (SUBPIXEL // 2) * nx3  # need 256 nx j > q (or >= q)
    den = SUBPIXEL * nx3
    safe = np.where(den == 0, 1, den)
    lo_e = np.where(inc3, _ceil_div(q, safe), q // safe + 1)  # for nx > 0
    hi_e = np.where(inc3, q // safe, _ceil_div(q, safe) - 1)  # for nx < 0 (division flips)
    big = np.int64(1 << 30)
    lo_e = np.where(nx3 > 0, lo_e, -big)
    hi_e = np.where(nx3 < 0, hi_e, big)
    flat_ok = np.where(nx3 == 0, np.where(inc3, c0 >= 0, c0 > 0), True)
    lo = lo_e.max(axis=1)
    hi = np.where(flat_ok.all(axis=1), hi_e.min(axis=1), -1)
    assert lo.shape == (n, IMAGE_SIZE)
    return _rows_from_intervals(lo, hi)


def _ellipse_rows(classes: np.ndarray) -> np.ndarray:
    """Ellipses: per row, the root interval of the quadratic (u/a)^2 + (v/b)^2 <= 1 in x."""
    s, c, sn, cx, cy = _geometry(classes)
    ia2 = 1.0 / (ELLIPSE_A * s) ** 2
    ib2 = 1.0 / (ELLIPSE_B * s) ** 2
    dy = (_COLS + 0.5)[None, :] - cy[:, None]  # (n, 64) row centre offsets
    alpha = (c * c * ia2 + sn * sn * ib2)[:, None]
    beta = (2.0 * c * sn * (ib2 - ia2))[:, None] * dy
    gamma = (sn * sn * ia2 + c * c * ib2)[:, None] * dy * dy - 1.0
    disc = beta * beta - 4.0 * alpha * gamma
    root = np.sqrt(np.maximum(disc, 0.0))
    x1 = cx[:, None] + (-beta - root) / (2.0 * alpha)
    x2 = cx[:, None] + (-beta + root) / (2.0 * alpha)
    lo = np.ceil(x1 - 0.5).astype(np.int64)
    hi = np.floor(x2 - 0.5).astype(np.int64)
    hi = np.where(disc >= 0, hi, -1)
    return _rows_from_intervals(lo, hi)


def _heart_rows(classes: np.ndarray) -> np.ndarray:
    """Hearts: point-in-polygon per pixel centre in a window around the sprite (star-shaped test)."""
    n = len(classes)
    s, c, sn, cx, cy = _geometry(classes)
    a, ang, bins_to_edge, nb_arr = _heart_tables()
    nb = int(nb_arr[0])
    ang_end = np.append(ang[1:], np.inf)  # edge k covers angles [ang[k], ang_end[k])
    rmax = float(np.hypot(a[:, 0], a[:, 1]).max())
    out = np.zeros((n, IMAGE_SIZE), dtype=_U64)
    for scale in np.unique(s):
        sel = np.flatnonzero(s == scale)
        r = rmax * scale
        w = int(np.ceil(2 * r)) + 2
        i0 = np.floor(cy[sel] - r).astype(np.int64)
        j0 = np.floor(cx[sel] - r).astype(np.int64)
        win = np.arange(w)
        ddx = (j0[:, None] + win[None, :] + 0.5) - cx[sel, None]  # (m, w) columns
        ddy = (i0[:, None] + win[None, :] + 0.5) - cy[sel, None]  # (m, w) rows
        cs, ss = c[sel, None, None], sn[sel, None, None]
        px, py = ddx[:, None, :], ddy[:, :, None]
        u = (px * cs - py * ss) / scale  # (m, w, w) local coordinates at scale 1
        v = (px * ss + py * cs) / scale
        phi = np.arctan2(v, u)
        k = bins_to_edge[np.clip(((phi + np.pi) * (nb / (2 * np.pi))).astype(np.int64), 0, nb - 1)]
        # The lookup gives the edge at the bin's start; step forward while phi is past its end.
        # The last edge wraps through +-pi: a bin starting below ang[0] maps to it, so move to
        # edge 0 when phi has already reached ang[0].
        last = len(ang) - 1
        k = np.where((k == last) & (phi >= ang[0]) & (phi < ang[last]), 0, k)
        for _ in range(16):
            end = ang_end[k]
            move = phi >= end
            if not move.any():
                break
            k = np.where(move, k + 1, k)
        ax, ay = a[k, 0], a[k, 1]
        bx, by = a[k + 1, 0], a[k + 1, 1]
        inside = (bx - ax) * (v - ay) - (by - ay) * (u - ax) >= 0.0
        weights = _U64(1) << (_U64(IMAGE_SIZE - 1) - win.astype(_U64))  # window col 0 at bit 63
        vals = (inside.astype(_U64) * weights[None, None, :]).sum(axis=2, dtype=_U64)
        vals = vals >> j0.astype(_U64)[:, None]
        rows = i0[:, None] + win[None, :]
        out[sel[:, None], rows] = vals
    return out


def render_packed(classes: np.ndarray) -> np.ndarray:
    """Bit-packed images (n, 512) uint8 for factor classes (n, 5) (shape, scale, orientation, posX, posY)."""
    classes = np.asarray(classes, dtype=np.int64)
    n = len(classes)
    rows = np.zeros((n, IMAGE_SIZE), dtype=_U64)
    for shape, fn in ((0, _square_rows), (1, _ellipse_rows), (2, _heart_rows)):
        sel = np.flatnonzero(classes[:, 0] == shape)
        for start in range(0, len(sel), CHUNK):
            part = sel[start : start + CHUNK]
            rows[part] = fn(classes[part])
    return rows.astype(">u8").view(np.uint8).reshape(n, PACKED_BYTES)


def render(classes: np.ndarray) -> np.ndarray:
    """Images (n, 64, 64) uint8 in {0, 1} for factor classes (n, 5)."""
    packed = render_packed(classes)
    return np.unpackbits(packed, axis=1).reshape(len(packed), IMAGE_SIZE, IMAGE_SIZE)


def _render_range(bounds: tuple[int, int]) -> np.ndarray:
    return render_packed(index_to_classes(np.arange(bounds[0], bounds[1], dtype=np.int64)))


def render_full_chunks(workers: int | None = None, chunk: int = 4 * CHUNK, progress: Callable[[int], None] | None = None) -> Iterator[np.ndarray]:
    """Render all 737,280 images in the official order, yielding packed chunks in order.

    ``workers`` processes (default: min(2, CPUs)); ``progress(k)`` is called per chunk.
    """
    bounds = [(a, min(a + chunk, NUM_IMAGES)) for a in range(0, NUM_IMAGES, chunk)]
    workers = workers or min(2, os.cpu_count() or 1)
    if workers <= 1:
        for b in bounds:
            out = _render_range(b)
            if progress:
                progress(len(out))
            yield out
        return
    import multiprocessing as mp

    # Workers only need numpy; "spawn"-free fork keeps start-up cheap on Linux, spawn elsewhere.
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(workers) as pool:
        for out in pool.imap(_render_range, bounds):
            if progress:
                progress(len(out))
            yield out


def render_full(workers: int | None = None, progress: bool = False) -> np.ndarray:
    """All 737,280 images bit-packed (737280, 512) uint8 in the official order (~377 MB)."""
    from tqdm.auto import tqdm

    packed = np.empty((NUM_IMAGES, PACKED_BYTES), dtype=np.uint8)
    with tqdm(total=NUM_IMAGES, desc="rendering dSprites", unit="img", unit_scale=True, disable=not progress) as bar:
        start = 0
        for out in render_full_chunks(workers, progress=bar.update):
            packed[start : start + len(out)] = out
            start += len(out)
    return packed

"""Bulk replay of ``numpy.random.RandomState.randint`` calls: the same numbers, much faster.
Used by :mod:`dis_eval.data.sampling` for the full grid's many small batches.

disentanglement_lib's samplers make one ``randint(high, size=n)`` call per factor column per
batch: a FactorVAE score at study defaults makes 90,000 of them, a BetaVAE score 330,000,
and at ~10-20 us each the calls cost more than the metric itself. The legacy
``RandomState`` stream is frozen by numpy's compatibility policy (NEP 19), and ``randint``
with ``high <= 2**32`` draws each value as: take the next 32-bit MT19937 output ``u``, mask
it to the smallest ``2**k - 1 >= high - 1``, retry while the result is ``> high - 1``.

:func:`replay_pattern` takes a call pattern repeated ``repeats`` times, draws the raw 32-bit
outputs in one call, replays masking/rejection (one short scalar step per call, vectorised
gathers), and leaves ``random_state`` exactly where the individual calls would have left it.
Each use checks the first repetition against real ``randint`` calls on a copy of the state;
on a mismatch (a numpy whose legacy stream changed) it falls back to calling ``randint``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _mask(rng: int) -> int:
    return (1 << int(rng).bit_length()) - 1


def _slow(random_state: np.random.RandomState, pattern: Sequence[tuple[int, int]],
          repeats: int) -> list[np.ndarray]:
    out = [np.empty((repeats, n), dtype=np.int64) for _, n in pattern]
    for b in range(repeats):
        for c, (h, n) in enumerate(pattern):
            out[c][b] = random_state.randint(h, size=n)
    return out


def replay_pattern(random_state: np.random.RandomState, pattern: Sequence[tuple[int, int]],
                   repeats: int) -> list[np.ndarray]:
    """``repeats`` times in turn ``[random_state.randint(h, size=n) for h, n in pattern]``.

    Returns one (repeats, n) int64 array per pattern entry; ``random_state`` advances exactly
    as the individual calls would advance it.
    """
    pattern = [(int(h), int(n)) for h, n in pattern]
    if repeats <= 0 or not pattern:
        return [np.zeros((max(repeats, 0), n), dtype=np.int64) for _, n in pattern]
    if any(h < 1 or h > 2**32 or n < 1 for h, n in pattern) or repeats < 4:
        return _slow(random_state, pattern, repeats)
    state = random_state.get_state()
    # expected raw outputs per value: (mask + 1) / high; 1% slack is > 30 standard deviations
    # for any sizeable plan, and running short falls back to real calls anyway
    expected = repeats * sum(n * (_mask(h - 1) + 1) / h for h, n in pattern if h > 1)
    budget = int(expected * 1.01) + 8192
    raw = random_state.randint(0, 2**32, size=budget, dtype=np.uint32)
    random_state.set_state(state)

    tables: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}
    for h, _ in pattern:
        if h in tables:
            continue
        rng, mask = h - 1, _mask(h - 1)
        if h == 1 or mask == rng:
            tables[h] = None  # never rejects (high == 1 draws nothing at all)
        else:
            acc = (raw & np.uint32(mask)) <= rng
            rank = np.zeros(budget + 1, dtype=np.int32)
            np.cumsum(acc, dtype=np.int32, out=rank[1:])  # accepted among raw[:i]
            tables[h] = (np.flatnonzero(acc).astype(np.int32), rank)
    # scalar walk: memoryviews give fast Python-int indexing
    steps = []
    for h, n in pattern:
        tab = tables[h]
        if h == 1:
            steps.append((0, None, None, n))
        elif tab is None:
            steps.append((1, None, None, n))
        else:
            steps.append((2, memoryview(tab[0]), memoryview(tab[1]), n))
    flat_starts: list[int] = []
    push = flat_starts.append
    off = 0
    try:
        for _ in range(repeats):
            for kind, pos, rank, n in steps:
                if kind == 2:
                    r = rank[off]
                    push(r)
                    off = pos[r + n - 1] + 1
                elif kind == 1:
                    push(off)
                    off += n
                else:
                    push(0)
    except IndexError:  # ran past the raw budget (vanishingly unlikely): draw call by call
        return _slow(random_state, pattern, repeats)
    starts = np.array(flat_starts, dtype=np.int64).reshape(repeats, len(pattern))
    if off > budget:
        return _slow(random_state, pattern, repeats)
    out = []
    for c, (h, n) in enumerate(pattern):
        if h == 1:
            out.append(np.zeros((repeats, n), dtype=np.int64))
            continue
        idx = starts[:, c, None] + np.arange(n)[None, :]
        tab = tables[h]
        if tab is not None:
            idx = tab[0][idx]
        out.append((raw[idx] & np.uint32(_mask(h - 1))).astype(np.int64))
    # verify the first repetition against real calls on a copy of the state
    probe = np.random.RandomState()
    probe.set_state(state)
    for c, (h, n) in enumerate(pattern):
        if not np.array_equal(probe.randint(h, size=n), out[c][0]):
            return _slow(random_state, pattern, repeats)
    if off:
        random_state.randint(0, 2**32, size=off, dtype=np.uint32)  # advance as the calls did
    return out


def grid_factor_batches(factor_sizes: Sequence[int], batch_size: int, num_batches: int,
                        random_state: np.random.RandomState, lead: int | None = None
                        ) -> tuple[np.ndarray, np.ndarray | None]:
    """Full-grid ``sample_factors(batch_size)`` (one ``randint(size, size=n)`` per column, as
    disentanglement_lib) ``num_batches`` times, each preceded by a scalar ``randint(lead)``
    when ``lead`` is given (the fixed factor of FactorVAE/BetaVAE votes).

    Returns factors (num_batches, batch_size, F) and the lead draws (num_batches,) or None.
    """
    pattern = ([(lead, 1)] if lead is not None else []) + [(s, batch_size) for s in factor_sizes]
    vals = replay_pattern(random_state, pattern, num_batches)
    leads = vals[0][:, 0] if lead is not None else None
    cols = vals[1:] if lead is not None else vals
    return np.stack(cols, axis=2), leads

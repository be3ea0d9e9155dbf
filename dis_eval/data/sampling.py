"""Every random draw a metric makes: rows of a data set, from a ``numpy.random.RandomState``.

The metrics never draw anything themselves; they ask the data object (which owns a
:class:`RowSampler`) for *positions* (rows ``0..len-1`` of the data object) in the batch
structure of their definition, and ask the representation for the codes of those rows.

Two regimes, decided by the data object:

Full grid (every combination of the factor grid present exactly once)
    Draws are disentanglement_lib's (Locatello et al., 2019: ``SplitDiscreteStateSpace``):
    a batch of n rows is one ``randint(size_k, size=n)`` per factor column k, in factor
    order; a batch sharing factor k is such a batch with column k set to its first row's
    value; a pair of batches sharing factor k is two batches with the second's column k
    overwritten by the first's. With the same seed the rows drawn are the reference's.
    Many batches in a row are replayed in bulk (:mod:`dis_eval.data.fast_draws`): the same
    numbers, the random state left where the single calls would leave it.

Any other set of rows (a dependent subset, a partial file, a user's factors file)
    Only present rows can be drawn, and they are drawn *as rows*: uniformly among the rows
    present (``randint(len, size=n)``), so a factor combination that occurs twice (a
    user's file may repeat combinations, each row with its own code) is twice as likely -
    the draw follows the data set's empirical distribution. Rows sharing factor k with a
    given row are drawn uniformly among the present rows with that value of factor k
    (combinations absent from the data are never named).
    - batch sharing factor k (FactorVAE): a uniform batch is drawn and its first row
      fixes the value; then the whole batch is drawn among rows with that value;
    - pair of batches sharing factor k (BetaVAE): the first batch uniform, each second row
      drawn among the rows sharing factor k with its partner.

Every method says the order in which it consumes the random state; that order is part of
the definition of the numbers (``--seed`` reproduces them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dis_eval.data.factors import grid_strides
from dis_eval.data.fast_draws import grid_factor_batches, replay_pattern


class RowSampler:
    """Random rows of a data object: see the module docstring for the two regimes.

    ``classes`` (n, F) are the rows' factor classes (row = position). ``full_grid`` says
    whether every combination of ``factor_sizes`` is present exactly once; then
    ``grid_to_position`` maps a combination's row-major grid index to its position
    (None: the identity, rows stored in row-major grid order as dSprites' official file).
    """

    def __init__(self, factor_sizes: Sequence[int], classes: np.ndarray, full_grid: bool,
                 grid_to_position: np.ndarray | None = None) -> None:
        self.factor_sizes = tuple(int(s) for s in factor_sizes)
        self.num_factors = len(self.factor_sizes)
        self.classes = np.asarray(classes, dtype=np.int64)
        self.full_grid = bool(full_grid)
        self._grid_to_position = grid_to_position
        if self.full_grid:
            self._strides = grid_strides(self.factor_sizes)
        self._groups: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return int(self.classes.shape[0])

    # ---- helpers --------------------------------------------------------------------------
    def _nonempty(self) -> None:
        if len(self) == 0:
            raise ValueError("cannot sample from an empty data set")

    def _check_factor(self, factor: int) -> int:
        if not 0 <= int(factor) < self.num_factors:
            raise ValueError(f"factor must be in 0..{self.num_factors - 1}, got {factor}")
        return int(factor)

    def _grid_positions(self, factors: np.ndarray) -> np.ndarray:
        """Positions of full-grid combinations (..., F)."""
        flat = factors @ self._strides
        return flat if self._grid_to_position is None else self._grid_to_position[flat]

    def _grid_factors(self, n: int, rs: np.random.RandomState) -> np.ndarray:
        """One full-grid batch of factor classes: ``randint(size, size=n)`` per column."""
        factors = np.zeros((n, self.num_factors), dtype=np.int64)
        for k, size in enumerate(self.factor_sizes):
            factors[:, k] = rs.randint(size, size=n)
        return factors

    def _group(self, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows grouped by their value of ``factor``: positions ordered by value (stable), where
        each value's run starts (one entry per distinct value, plus the end), and each row's
        run. The rows sharing row p's value are ``order[starts[run[p]]:starts[run[p] + 1]]``."""
        if factor not in self._groups:
            col = self.classes[:, factor]
            order = np.argsort(col, kind="stable")
            values, run = np.unique(col, return_inverse=True)
            starts = np.searchsorted(col[order], np.append(values, values[-1] + 1))
            self._groups[factor] = (order, starts, run.reshape(-1))
        return self._groups[factor]

    # ---- single draws -----------------------------------------------------------------------
    def positions(self, n: int, rs: np.random.RandomState) -> np.ndarray:
        """n uniformly drawn rows (positions, int64 (n,)).

        Full grid: one ``randint(size, size=n)`` per factor column (dlib's
        ``sample_factors``); otherwise one ``randint(len, size=n)``.
        """
        self._nonempty()
        if self.full_grid:
            return self._grid_positions(self._grid_factors(n, rs))
        return rs.randint(len(self), size=n)

    def fixed_factor(self, n: int, factor: int, rs: np.random.RandomState) -> np.ndarray:
        """n rows (positions) sharing the value of ``factor``.

        Full grid: a batch of n, column ``factor`` set to row 0's value (dlib's FactorVAE
        draw). Otherwise: a uniform batch of n, whose first row gives the value (the whole
        batch is drawn, as the full grid's draw would, so that a seed's numbers stay those of
        earlier versions), then n rows uniformly among the present rows with that value
        (``randint(count, size=n)``).
        """
        factor = self._check_factor(factor)
        self._nonempty()
        if self.full_grid:
            factors = self._grid_factors(n, rs)
            factors[:, factor] = factors[0, factor]
            return self._grid_positions(factors)
        first = rs.randint(len(self), size=n)
        order, starts, run = self._group(factor)
        lo, hi = starts[run[first[0]]], starts[run[first[0]] + 1]
        return order[lo + rs.randint(hi - lo, size=n)]

    def partners(self, positions: np.ndarray, factor: int, rs: np.random.RandomState) -> np.ndarray:
        """For each given row, one row drawn uniformly among the present rows sharing its value
        of ``factor`` (one ``randint`` call with one upper bound per row)."""
        factor = self._check_factor(factor)
        order, starts, run = self._group(factor)
        r = run[positions]
        lo = starts[r]
        return order[lo + rs.randint(starts[r + 1] - lo)]

    # ---- batches in a metric's structure -----------------------------------------------------
    def batches(self, num_points: int, batch_size: int, rs: np.random.RandomState) -> np.ndarray:
        """``num_points`` rows drawn ``batch_size`` at a time (the last batch may be short), as
        dlib's ``generate_batch_factor_code`` draws them: positions (num_points,)."""
        self._nonempty()
        chunks = []
        i = 0
        if self.full_grid and num_points >= batch_size:  # whole batches replayed in bulk
            nb = num_points // batch_size
            f, _ = grid_factor_batches(self.factor_sizes, batch_size, nb, rs)
            chunks.append(self._grid_positions(f.reshape(nb * batch_size, -1)))
            i = nb * batch_size
        while i < num_points:
            m = min(num_points - i, batch_size)
            chunks.append(self.positions(m, rs))
            i += m
        if not chunks:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate(chunks).astype(np.int64, copy=False)

    def fixed_factor_batches(self, num_batches: int, batch_size: int, rs: np.random.RandomState
                             ) -> tuple[np.ndarray, np.ndarray]:
        """FactorVAE's votes: per batch, factor k = ``randint(F)`` then ``fixed_factor(batch_size,
        k)``. Returns the factors (num_batches,) and positions (num_batches, batch_size)."""
        self._nonempty()
        if self.full_grid:  # the same draws, replayed in bulk
            factors, ks = grid_factor_batches(self.factor_sizes, batch_size, num_batches, rs,
                                              lead=self.num_factors)
            rows = np.arange(num_batches)
            factors[rows, :, ks] = factors[rows, 0, ks][:, None]
            return ks.astype(np.int64), self._grid_positions(factors)
        ks = np.empty(num_batches, dtype=np.int64)
        pos = np.empty((num_batches, batch_size), dtype=np.int64)
        for v in range(num_batches):
            ks[v] = rs.randint(self.num_factors)
            pos[v] = self.fixed_factor(batch_size, int(ks[v]), rs)
        return ks, pos

    def paired_batches(self, num_points: int, batch_size: int, rs: np.random.RandomState
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """BetaVAE's points: per point, factor k = ``randint(F)``, then two batches where pair i
        shares factor k. Full grid: two batches, the second's column k overwritten by the
        first's; otherwise a uniform batch and each row's partner (:meth:`partners`).
        Returns the factors (num_points,) and positions (num_points, batch_size) twice."""
        self._nonempty()
        nf = self.num_factors
        if self.full_grid:  # the same draws, replayed in bulk
            cols = [(s, batch_size) for s in self.factor_sizes]
            vals = replay_pattern(rs, [(nf, 1)] + cols + cols, num_points)
            ks = vals[0][:, 0]
            f1 = np.stack(vals[1: 1 + nf], axis=2)
            f2 = np.stack(vals[1 + nf:], axis=2)
            rows = np.arange(num_points)
            f2[rows, :, ks] = f1[rows, :, ks]
            return ks.astype(np.int64), self._grid_positions(f1), self._grid_positions(f2)
        ks = np.empty(num_points, dtype=np.int64)
        pos1 = np.empty((num_points, batch_size), dtype=np.int64)
        pos2 = np.empty((num_points, batch_size), dtype=np.int64)
        for i in range(num_points):
            k = rs.randint(nf)
            ks[i] = k
            pos1[i] = rs.randint(len(self), size=batch_size)
            pos2[i] = self.partners(pos1[i], k, rs)
        return ks, pos1, pos2

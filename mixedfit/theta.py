"""θ, the covariance parameters of the random effects, laid out as lme4 lays them out.

Each random-effects term of size S has a lower-triangular S×S template T
(the relative Cholesky factor, ``Λθ``'s block for one level); its θ is T's
lower triangle read column by column, and the model's θ is the terms' θ one
after another (lme4's order).  ``ThetaLayout`` owns that layout for a model:
each term's slice of θ, its templates, lme4's names and bounds, and the
conversions to and from the (sd, cor, σ) and (var, cov, σ²) scales on which
lme4 profiles and reports, exactly as lme4's ``Cv_to_Sv`` / ``Sv_to_Cv`` do.
``JoinedTheta`` maps θ to the Cholesky engine's terms, which join the
terms on one grouping factor in one block-diagonal template.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np

from .terms import RandomEffectsTerm

__all__ = ["template_positions", "lower_template", "canonical", "ThetaLayout", "JoinedTheta"]


@functools.lru_cache(maxsize=None)
def template_positions(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of θ's entries in a template: its lower triangle, column major.

    Examples
    --------
    >>> [p.tolist() for p in template_positions(2)]
    [[0, 1, 1], [0, 0, 1]]
    """
    rows, cols = np.triu_indices(size)  # row-major upper triangle of Tᵀ = column-major lower of T
    rows.flags.writeable = cols.flags.writeable = False  # cached: shared by every caller
    return cols, rows


def lower_template(theta: np.ndarray, size: int) -> np.ndarray:
    """The S×S lower-triangular template of one term from its θ slice (column major).

    Examples
    --------
    >>> lower_template(np.array([1.0, 0.5, 2.0]), 2)
    array([[1. , 0. ],
           [0.5, 2. ]])
    """
    T = np.zeros((size, size))
    T.ravel()[_flat_positions(size)] = theta  # one index array: a third of the time of the (row, col) pair
    return T


@functools.lru_cache(maxsize=None)
def _flat_positions(size: int) -> np.ndarray:
    """``template_positions`` as positions in the flattened S×S template."""
    rows, cols = template_positions(size)
    flat = rows * size + cols
    flat.flags.writeable = False  # cached: shared by every caller
    return flat


def canonical(theta: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """θ with each template column whose diagonal is negative flipped: the same ΛΛᵀ, within lme4's bounds.

    In lme4's order a column's entries follow its diagonal, the only entries
    with a finite bound, so θ taken without bounds comes back into them.

    Examples
    --------
    >>> canonical(np.array([-1.0, 0.5, 2.0]), np.array([0.0, -np.inf, 0.0])).tolist()
    [1.0, -0.5, 2.0]
    """
    out, sign = np.array(theta, float), 1.0
    for i in range(out.size):
        if np.isfinite(lower[i]):
            sign = -1.0 if out[i] < 0 else 1.0
        out[i] *= sign
    return out


_ZERO_PIVOT = 1e-14  # relative size at or below which a safe Cholesky factor's pivot counts as zero


def _safe_chol(m: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a covariance matrix that may be singular (lme4's ``safe_chol``).

    A positive semi-definite matrix that LAPACK refuses (a correlation of ±1)
    is factored column by column with zero pivots giving zero columns; any
    lower-triangular L with LLᵀ = m gives the same deviance.
    """
    k = m.shape[0]
    if k == 1:
        return np.sqrt(m)
    # The tests on Python floats: numpy's calls cost more on matrices this small (a profile's
    # every evaluation comes here).  Off the diagonal a value must be 0; on it, finite.
    flat = m.ravel().tolist()
    if not any(flat) or any(math.isnan(x) for x in flat):
        return m.copy()
    if all(x == 0 if i % (k + 1) else math.isfinite(x) for i, x in enumerate(flat)):
        return np.diag(np.sqrt(np.diag(m)))
    try:
        return np.linalg.cholesky(m)
    except np.linalg.LinAlgError:
        pass
    k = m.shape[0]
    L = np.zeros_like(m)
    for j in range(k):
        d = m[j, j] - L[j, :j] @ L[j, :j]
        if d <= _ZERO_PIVOT * max(1.0, abs(m[j, j])):
            continue  # a zero pivot: this column of L is zero
        L[j, j] = math.sqrt(d)
        L[j + 1 :, j] = (m[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]) / L[j, j]
    return L


def _safe_chol_2x2(c00: float, c10: float, c11: float) -> tuple[float, float, float]:
    """``_safe_chol`` of the finite 2×2 ``[[c00, c10], [c10, c11]]`` on Python floats: (L00, L10, L11).

    The same numbers: LAPACK's where it factors the matrix (its unblocked
    ``dpotf2`` scales the column by the pivot's reciprocal), and where it
    refuses, ``_safe_chol``'s columns, a pivot at or below the tolerance
    giving a zero column.

    Examples
    --------
    >>> _safe_chol_2x2(4.0, 2.0, 5.0)
    (2.0, 1.0, 2.0)
    >>> _safe_chol_2x2(1.0, 1.0, 1.0)  # a correlation of 1: LAPACK refuses, the second column is zero
    (1.0, 1.0, 0.0)
    """
    if c10 == 0.0:
        return (c00, c10, c11) if c00 == 0.0 and c11 == 0.0 else (math.sqrt(c00), 0.0, math.sqrt(c11))
    if c00 > 0.0:
        l00 = math.sqrt(c00)
        l10 = c10 * (1.0 / l00)
        if c11 - l10 * l10 > 0.0:
            return l00, l10, math.sqrt(c11 - l10 * l10)
    l00 = l10 = 0.0
    if c00 > _ZERO_PIVOT * max(1.0, abs(c00)):
        l00 = math.sqrt(c00)
        l10 = c10 / l00
    d = c11 - l10 * l10
    return l00, l10, math.sqrt(d) if d > _ZERO_PIVOT * max(1.0, abs(c11)) else 0.0


class ThetaLayout:
    """Where each term's θ sits in the model's θ, and what its entries are.

    Parameters
    ----------
    terms : list of RandomEffectsTerm
        The model's terms, in lme4's order.

    Attributes
    ----------
    slices : list of slice
        Each term's part of θ.
    diagonal : ndarray of bool
        Where θ holds a template's diagonal entry (a standard deviation's).
    lower : ndarray
        lme4's lower bounds of θ: 0 on the diagonals, −∞ elsewhere.

    Examples
    --------
    >>> import mixedfit as mf
    >>> from mixedfit.terms import build_design
    >>> d = build_design("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
    >>> layout = ThetaLayout(d.terms)
    >>> layout.names, layout.lower.tolist()
    (['Subject.(Intercept)', 'Subject.Days.(Intercept)', 'Subject.Days'], [0.0, -inf, 0.0])
    """

    def __init__(self, terms: list[RandomEffectsTerm]):
        self.sizes = [t.size for t in terms]
        self._groups = [t.group for t in terms]
        self._cnames = [list(t.cnames) for t in terms]
        bounds = list(itertools.accumulate((s * (s + 1) // 2 for s in self.sizes), initial=0))
        self.slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
        self.diagonal = np.concatenate([np.equal(*template_positions(s)) for s in self.sizes])
        self.lower = np.where(self.diagonal, 0.0, -np.inf)

    @property
    def start(self) -> np.ndarray:
        """lme4's default starting θ: 1 on the template diagonals, 0 elsewhere (a new array)."""
        return self.diagonal.astype(float)

    def split(self, theta: np.ndarray) -> list[np.ndarray]:
        """θ per term."""
        return [theta[sl] for sl in self.slices]

    def templates(self, theta: np.ndarray) -> list[np.ndarray]:
        """Λθ's template per term."""
        return [lower_template(theta[sl], S) for sl, S in zip(self.slices, self.sizes)]

    def _entries(self, diagonal: str, offdiagonal: str) -> list[str]:
        """A name per entry of θ from two patterns of ``group``, ``row`` and ``col`` (column names)."""
        names = []
        for group, cn in zip(self._groups, self._cnames):
            for i, j in zip(*template_positions(len(cn))):
                pattern = diagonal if i == j else offdiagonal
                names.append(pattern.format(group=group, row=cn[i], col=cn[j]))
        return names

    @property
    def names(self) -> list[str]:
        """θ's names as lme4 gives them: ``Subject.(Intercept)``, ``Subject.Days.(Intercept)``.

        lme4 names θ by the grouping factor itself, even where VarCorr says ``Subject.1``.
        """
        return self._entries("{group}.{row}", "{group}.{row}.{col}")

    def sdcor_names(self, prefix: tuple[str, str] = ("sd", "cor")) -> list[str]:
        """lme4's names of θ's entries on the (sd, cor) scale: ``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``.

        ``prefix`` replaces ``sd`` and ``cor`` (``("var", "cov")`` for the variance scale).
        """
        return self._entries(prefix[0] + "_{row}|{group}", prefix[1] + "_{row}.{col}|{group}")

    # -- θ <-> (sd, cor, σ) ------------------------------------------------------
    def to_sdcor(self, theta: np.ndarray, sigma: float) -> np.ndarray:
        """lme4's ``Cv_to_Sv``: θ and σ to (sd, cor, ..., σ), θ's order, σ last.

        Examples
        --------
        >>> import mixedfit as mf
        >>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
        >>> fit.model.layout.to_sdcor(fit.theta.to_numpy(), fit.sigma).round(3).tolist()
        [24.741, 0.066, 5.922, 25.592]
        """
        out = []
        for T, S in zip(self.templates(np.asarray(theta, float)), self.sizes):
            cov = (T @ T.T) * sigma**2
            sd = np.sqrt(np.diag(cov))
            with np.errstate(divide="ignore", invalid="ignore"):
                m = cov / np.outer(sd, sd)
            m[~np.isfinite(m)] = 0.0  # lme4's cov2sdcor turns NA correlations into 0
            m[np.diag_indices(S)] = sd
            out.append(m[template_positions(S)])
        return np.concatenate(out + [[sigma]])

    def from_sdcor(self, sdcor: np.ndarray) -> np.ndarray:
        """lme4's ``Sv_to_Cv``: (sd, cor, ..., σ) to θ, through a safe Cholesky factor.

        Terms of one or two columns are worked on Python floats where every
        value is finite and σ positive (``_safe_chol_2x2``): a profile
        converts at every evaluation, and numpy's calls on arrays this small
        took 14 µs of the 48 of a sleepstudy profile's evaluation.

        Examples
        --------
        >>> import mixedfit as mf
        >>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
        >>> v = fit.model.layout.to_sdcor(fit.theta.to_numpy(), fit.sigma)
        >>> np.allclose(fit.model.layout.from_sdcor(v), fit.theta.to_numpy())
        True
        """
        sdcor = np.asarray(sdcor, float)
        sigma = sdcor[-1]
        values = sdcor.tolist()
        small = sigma > 0 and all(map(math.isfinite, values))
        s2 = float(sigma**2)
        out: list = []
        for (sl, a, b), S in zip(self._sd_pairs, self.sizes):
            if small and S == 1:
                out.append(math.sqrt(values[sl.start] * values[sl.start] / s2))
            elif small and S == 2:
                sd0, cor, sd1 = values[sl]
                out.extend(_safe_chol_2x2(sd0 * sd0 / s2, cor * (sd0 * sd1) / s2, sd1 * sd1 / s2))
            else:
                v = sdcor[sl]
                rows, cols = template_positions(S)
                # cor × sd_i sd_j / σ², with 1 for cor on the diagonal
                entries = np.where(a == b, 1.0, v) * (v[a] * v[b]) / sigma**2
                cov = np.empty((S, S))
                cov[rows, cols] = cov[cols, rows] = entries
                out.extend(_safe_chol(cov)[rows, cols].tolist())
        return np.array(out)

    # -- (sd, cor, σ) <-> (var, cov, σ²) -------------------------------------------
    @functools.cached_property
    def _sd_pairs(self) -> list[tuple[slice, np.ndarray, np.ndarray]]:
        """Per term: its slice, and per entry the positions in the slice of its row's and its column's sd."""
        out = []
        for sl, S in zip(self.slices, self.sizes):
            rows, cols = template_positions(S)
            at = np.empty((S, S), dtype=np.intp)
            at[rows, cols] = np.arange(rows.size)
            sd = at[np.arange(S), np.arange(S)]
            out.append((sl, sd[rows], sd[cols]))
        return out

    def to_varcov(self, sdcor: np.ndarray) -> np.ndarray:
        """(sd, cor, σ) to (var, cov, σ²)."""
        out = np.empty_like(sdcor)
        for sl, a, b in self._sd_pairs:
            v = sdcor[sl]
            out[sl] = np.where(a == b, v[a] ** 2, v * v[a] * v[b])
        out[-1] = sdcor[-1] ** 2
        return out

    def from_varcov(self, varcov: np.ndarray) -> np.ndarray:
        """(var, cov, σ²) to (sd, cor, σ); NaN where a variance is negative."""
        out = np.empty_like(varcov)
        with np.errstate(invalid="ignore", divide="ignore"):
            for sl, a, b in self._sd_pairs:
                x = varcov[sl]
                sd = np.sqrt(x)
                out[sl] = np.where(a == b, sd[a], x / (sd[a] * sd[b]))
            out[-1] = math.sqrt(varcov[-1]) if varcov[-1] >= 0 else math.nan
        return out


class JoinedTheta:
    """θ as the Cholesky engine's terms take it, where terms on one grouping factor are joined.

    The engine joins a grouping factor's terms in one term with a
    block-diagonal template (``mixedfit.blocks.engine_plan``): a joined
    term's θ holds its parts' θ in that template, zeros between them.

    Parameters
    ----------
    plan : list of list of int
        Per engine term, the indices of the model's terms it joins.
    sizes : list of int
        Each model term's size S.

    Attributes
    ----------
    pieces : list of (int, slice)
        Per model term: its engine term and its columns there.

    Examples
    --------
    >>> joined = JoinedTheta([[1, 0]], [2, 1])  # (0 + x + z|g) after (1|g): a 3×3 template
    >>> joined.engine([np.array([2.0, 0.5, 3.0]), np.array([1.0])])[0]
    array([1. , 0. , 0. , 2. , 0.5, 3. ])
    """

    def __init__(self, plan: list[list[int]], sizes: list[int]):
        self.plan = plan
        self.pieces: list[tuple[int, slice]] = [None] * len(sizes)
        self._at: list[tuple[np.ndarray, int] | None] = []  # per engine term: where its parts' θ go (None: one part)
        # per model term: its engine term, and where its θ's entries lie in that term's flattened template
        self._flat_at: list[tuple[int, np.ndarray]] = [None] * len(sizes)
        for e, parts in enumerate(plan):
            part_sizes = [sizes[i] for i in parts]
            starts = list(itertools.accumulate(part_sizes, initial=0))
            for i, a, b in zip(parts, starts[:-1], starts[1:]):
                self.pieces[i] = (e, slice(a, b))
                rows, columns = template_positions(sizes[i])
                self._flat_at[i] = (e, (a + rows) * starts[-1] + a + columns)
            self._at.append(None if len(parts) == 1 else _joined_positions(part_sizes))

    def engine(self, theta_terms: list[np.ndarray]) -> list[np.ndarray]:
        """θ per engine term (engine order) from θ per model term (lme4 order)."""
        out = []
        for parts, at in zip(self.plan, self._at):
            if at is None:
                out.append(theta_terms[parts[0]])
            else:
                th = np.zeros(at[1])
                th[at[0]] = np.concatenate([theta_terms[i] for i in parts])
                out.append(th)
        return out

    def theta_gradient(self, template_gradients: list[np.ndarray]) -> np.ndarray:
        """The gradient in θ (lme4's order) from the derivatives in each engine term's template entries.

        Examples
        --------
        >>> joined = JoinedTheta([[1, 0]], [2, 1])
        >>> joined.theta_gradient([np.arange(9.0).reshape(3, 3)])  # (0 + x + z|g)'s entries, then (1|g)'s
        array([4., 7., 8., 0.])
        """
        return np.concatenate([template_gradients[e].reshape(-1)[at] for e, at in self._flat_at])

    def by_model_term(self, arrays: list[np.ndarray], axes: int) -> list[np.ndarray]:
        """Per model term (lme4 order), its part of per-engine-term arrays whose last ``axes`` axes run over the columns."""
        return [arrays[e][(Ellipsis,) + (cols,) * axes] for e, cols in self.pieces]


def _joined_positions(sizes: list[int]) -> tuple[np.ndarray, int]:
    """Where the θ of terms of these sizes go in the θ of their joined block-diagonal template, and its length.

    Examples
    --------
    >>> _joined_positions([1, 2])  # (1|g) + (0 + x + z|g): θ (t1; t2, t3, t4) in a 3×3 template
    (array([0, 3, 4, 5]), 6)
    """
    S = sum(sizes)
    rows, cols = template_positions(S)
    at = np.empty((S, S), dtype=np.intp)
    at[rows, cols] = np.arange(rows.size)
    positions, start = [], 0
    for size in sizes:
        r, c = template_positions(size)
        positions.append(at[start + r, start + c])
        start += size
    return np.concatenate(positions), rows.size

"""Generalized linear mixed models the way lme4's ``glmer`` fits them.

For a given θ (and β), PIRLS finds the conditional modes ũ of the spherical
random effects: each step solves the penalized weighted least squares problem
``(ΛᵀZᵀWZΛ + I) u = ΛᵀZᵀW z`` at the working weights W and working response z
of the family and link, and halves the step while the penalized deviance
``Σ devresid + ‖u‖²`` does not fall (lme4's ``pwrssUpdate``).  The objective
is lme4's: the Laplace approximation ``log|L|² + ‖ũ‖² + aic(μ)`` (``aic`` is
the family's −2 log-likelihood) or, for ``nagq > 1`` and a single scalar
random-effects term, adaptive Gauss–Hermite quadrature (``glmerAGQ``).

The fit runs lme4's two stages: θ with β inside PIRLS (``nAGQ = 0``), then θ
and β jointly from there.  ``GlmmModel`` produces the fitted numbers
(``GlmmFit``); ``mixedfit.glmm_results.GlmmResults`` is the face
on top of them, and ``mixedfit.glmm_results.glmer`` the whole fit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import LinAlgError

from .errors import ModelSpecError
from .family import Family
from .glmm_factor import (BlockFactor, EntryMatrix, EntryPattern, RestEntries, SparseGram, entry_sums,
                          lower_cholesky, solve_lower)
from .model import Convergence, blas_controller, check_convergence
from .optimize import OptSummary, bobyqa
from .terms import Design, sparse_rows
from .theta import ThetaLayout

__all__ = ["GlmmModel", "GlmmFit", "MemoryRows", "PirlsState", "PirlsError", "PwlsSums", "paired_derivatives"]

_TOL_PWRSS = 1e-7  # glmerControl(tolPwrss)
_MAXIT = 100  # mkdevfun's maxit for glmer
_MAX_HALVINGS = 20  # pwrssUpdate's maxstephalfit
_BOUNDARY_TOL = 1e-5  # glmerControl(boundary.tol)
_MAX_NAGQ = 25  # lme4's limit on nAGQ
# Most entries of the dense products of the rest's columns with all columns
# accumulated by bincount (32 MB); beyond, sparse products.
_DENSE_PRODUCTS = 4_000_000
_GRAM_DENSE_COST = 25  # see GlmmModel._sparse_gram
# Stage 2's first steps, as lme4 sizes its Nelder-Mead simplex (optwrap):
# 0.2 × 0.1 in every θ, 0.2 standard errors in every β.
_THETA_STEP = 0.02
_BETA_STEP = 0.2  # in standard errors (see GlmmModel._stage2)
_RESTARTS = 3  # most BOBYQA restarts while each still lowers the deviance
_XTOL_ABS = 1e-10
_FTOL_ABS = 1e-10
_RESTART_GAIN = 1e-10  # relative decrease of the deviance that warrants another restart
_VCOV_WARNING = ("variance-covariance matrix computed from finite-difference Hessian is\n"
                 "not positive definite or contains NA values: falling back to var-cov "
                 "estimated from RX")


class PirlsError(ModelSpecError):
    """PIRLS did not converge (lme4's ``pwrssUpdate`` errors, with its words).

    During the optimization it makes the objective infinite; at the start or
    the optimum it reaches the user, as lme4's error does.
    """


@dataclass
class PirlsState:
    """Converged PIRLS at one θ (and β): the modes and what lme4's objective reads.

    ``L`` is the Cholesky factor of ``ΛᵀZᵀWZΛ + I`` at the working
    weights of the last iteration, ``sqrtw`` those weights' square roots
    (lme4 keeps the decomposition made before the last update of μ).
    """

    u: np.ndarray
    beta: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    dev_resid: np.ndarray
    L: BlockFactor
    sqrtw: np.ndarray
    iterations: int
    halvings: int = 0  # steps halved on the way (lme4's step-halving in pwrssUpdate)

    @property
    def ldL2(self) -> float:
        return self.L.logdet


@dataclass
class PwlsSums:
    """The row sums one PIRLS step solves from: (a) of PIRLS's split into sums and solve.

    At the step's working weights W and working response z: per level of
    the first term ``level`` = Σ wᵢ zᵢₛ zᵢₜ (s ≥ t), the rest's weighted
    products ``B`` (with the first term's columns) and ``C`` (with its own,
    without the identity), ``zwz`` = (ZΛ)ᵀWz, and where β is solved too
    ``zwx`` = (ZΛ)ᵀWX, ``xwx`` = XᵀWX and ``xwz`` = XᵀWz.  Sums over rows,
    so those of parts of the rows add up (``+``) to those of all of them;
    ``GlmmModel._solve`` is (b), the same from any source of sums.
    """

    level: np.ndarray
    B: np.ndarray
    C: np.ndarray
    zwz: np.ndarray
    zwx: np.ndarray | None = None
    xwx: np.ndarray | None = None
    xwz: np.ndarray | None = None

    def __add__(self, other: "PwlsSums") -> "PwlsSums":
        # not dataclasses.astuple: it deep-copies every array
        pairs = ((getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(self))
        return PwlsSums(*(None if a is None else a + b for a, b in pairs))


class MemoryRows:
    """PIRLS's source of sums in memory: the rows at hand, the current point as its η, μ and deviance
    residuals per row.

    ``sums()`` gives the row sums of a step at the current point's working
    weights; ``evaluate(u, β)`` moves the point and returns the penalized
    deviance there; ``state`` the converged PIRLS.  PIRLS starts at
    ``eta_start`` (default: lme4's ``lp0`` plus the offset, whose working
    weights the model keeps).
    """

    def __init__(self, model: GlmmModel, theta: np.ndarray, beta: np.ndarray | None,
                 eta_start: np.ndarray | None):
        self.model, self.joint = model, beta is None
        if eta_start is None:
            self.eta, self._working = model._start()
        else:
            self.eta, self._working = eta_start, None
        # after the start: the first one runs a PIRLS of its own, on the model's one ZΛ
        self.values = model._term_values(theta)
        self.zl, self.zlt = model._zlambda_pair(self.values)
        self.base = model.offset if self.joint else model.offset + model.X @ np.asarray(beta, float)
        self.mu = self.dev = self.sqrtw = None

    def sums(self) -> PwlsSums:
        m = self.model
        mu, self.sqrtw, wres = m._working(self.eta, self.mu) if self._working is None else self._working
        self._working = None
        return m.step_sums(self.zlt, self.values, self.sqrtw, self.eta - self.base + wres, self.joint)

    def evaluate(self, u: np.ndarray, b: np.ndarray) -> float:
        m = self.model
        self.eta = (m.offset + m.X @ b if self.joint else self.base) + self.zl @ u
        pdev, self.mu, self.dev = m._penalized_deviance(self.eta, u)
        return pdev

    def state(self, u: np.ndarray, b: np.ndarray, L: BlockFactor, iterations: int, halvings: int) -> PirlsState:
        return PirlsState(u, b, self.eta, self.mu, self.dev, L, self.sqrtw, iterations, halvings)


@dataclass
class GlmmFit:
    """The fitted numbers of a GLMM: what the results face reads.

    Attributes
    ----------
    theta, beta : ndarray
        Estimates (θ in lme4's order).
    state : PirlsState
        PIRLS at the estimates (modes, μ, η, the factor).
    opt : OptSummary
        The last stage's optimizer record (``final`` holds θ, then β after
        the first stage), with the finite-difference gradient and Hessian of
        the deviance in all parameters.
    stage1 : OptSummary
        The ``nAGQ = 0`` stage.
    conv : Convergence
        lme4's convergence messages and code.
    vcov : ndarray
        Covariance of β̂ (from the Hessian when it is positive definite,
        else from R_X, as lme4's ``vcov``).
    vcov_warnings : list of str
        lme4's warning when it falls back to R_X.
    """

    theta: np.ndarray
    beta: np.ndarray
    state: PirlsState
    opt: OptSummary
    stage1: OptSummary
    conv: Convergence
    vcov: np.ndarray
    vcov_warnings: list[str]


class GlmmModel:
    """A GLMM ready to be fitted: the design, the family and nAGQ.

    Parameters
    ----------
    design : Design
        Built with ``family=`` (``mixedfit.terms.build_design``): the
        response as R's ``family$initialize`` leaves it.
    family : Family
        The family and link.
    nagq : int
        0 (β inside PIRLS), 1 (Laplace, lme4's default) or up to 25 points
        of adaptive Gauss–Hermite quadrature (one scalar random-effects term).

    Examples
    --------
    >>> import mixedfit as mf
    >>> from mixedfit.family import family
    >>> from mixedfit.terms import build_design
    >>> fam = family("binomial")
    >>> d = build_design("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                  mf.load_dataset("cbpp"), family=fam)
    >>> m = GlmmModel(d, fam)
    >>> round(m.stage1_objective(np.array([1.0])), 6)  # lme4: 186.723145113705, devfun(1) of nAGQ = 0
    186.723145
    """

    def __init__(self, design: Design, family: Family, nagq: int = 1):
        self._structure(design, family, nagq)
        n = design.nobs
        self.y = np.asarray(design.y, float)
        self.weights = np.ones(n) if design.weights is None else np.asarray(design.weights, float)
        self.trials = np.ones(n) if design.trials is None else np.asarray(design.trials, float)
        self.offset = np.zeros(n) if design.offset is None else np.asarray(design.offset, float)
        self._columns = self._z_columns()
        keys = self._gram_keys()
        self._pair_index = self._pair_indices(nested=keys is not None)
        self._gram = self._sparse_gram(keys)
        self._diagonal = self._diagonal_rows()
        self._entries = self._rest_entries()
        self._level_order = self._sorted_rows()
        self._closures()

    def _structure(self, design: Design, family: Family, nagq: int) -> None:
        """The checks and what PIRLS's solve and the optimizer read: none of it per row but X's columns."""
        if not design.terms:
            raise ModelSpecError("No random effects terms specified in formula")
        if isinstance(nagq, bool) or not isinstance(nagq, (int, np.integer)) or not 0 <= nagq <= _MAX_NAGQ:
            raise ModelSpecError(f"nagq must be a whole number from 0 to {_MAX_NAGQ} (lme4's nAGQ), not {nagq!r}")
        if nagq > 1 and (len(design.terms) != 1 or design.terms[0].size != 1):
            raise ModelSpecError("nAGQ > 1 is only available for models with a single, scalar "
                                 "random-effects term (lme4's restriction): use nagq=1 (Laplace) "
                                 "or nagq=0")
        self.design, self.family, self.nagq = design, family, int(nagq)
        self.X = np.asarray(design.X, float)
        self.layout = ThetaLayout(design.terms)
        self.lower = self.layout.lower
        self.start = self.layout.start  # lme4's reTrms$theta for glmer
        self.q = int(sum(t.size * t.nlevels for t in design.terms))
        self._tril0 = np.tril_indices(design.terms[0].size)
        self._gram, self._diagonal, self._entries = None, 0, None  # dense products of the rest (see __init__)
        self._lp0 = None  # where PIRLS starts (lme4's lp0): the linear predictor without the offset
        self._modes: tuple[np.ndarray, np.ndarray] | None = None  # the last PIRLS's u and β (see pirls)
        self._agq = _gauss_hermite(self.nagq) if self.nagq > 1 else None

    def _sorted_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The rows sorted by the first term's level, where each level starts, and the sorted rows'
        products zᵢₛ zᵢₜ (s ≥ t) as (S(S+1)/2, n), for ``_level_sums``; None where a level has no rows."""
        first = self.design.terms[0]
        counts = np.bincount(first.codes, minlength=first.nlevels)
        if not np.all(counts > 0):
            return None
        order = np.argsort(first.codes, kind="stable")
        z = first.z[order]
        rows, cols = self._tril0
        return order, np.cumsum(counts) - counts, np.ascontiguousarray((z[:, rows] * z[:, cols]).T)

    def _closures(self) -> None:
        """The family's deviance and likelihood as functions of μ for this response."""
        self._aic = self.family.aic_at(self.y, self.trials, self.weights)
        self._dev = self.family.dev_resids_at(self.y, self.weights)

    def __getstate__(self) -> dict:
        # The family's closures are rebuilt on unpickling, not pickled; nor the caches (ZΛ's two
        # matrices share their entries, which a pickle would part).
        return {k: v for k, v in self.__dict__.items()
                if k not in ("_aic", "_dev", "_start_cache", "_zl_pair")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._closures()

    # -- structure ------------------------------------------------------------
    @property
    def ntheta(self) -> int:
        return self.lower.size

    @property
    def p(self) -> int:
        return self.X.shape[1]

    def _z_columns(self) -> np.ndarray:
        """Per row, the columns of Z (lme4's order: term by term, level-major) it has entries in, (n, ΣS)."""
        cols, offset = [], 0
        for term in self.design.terms:
            cols.append(offset + term.columns)
            offset += term.size * term.nlevels
        return np.hstack(cols)

    def zlambda(self, theta: np.ndarray) -> sp.csr_matrix:
        """ZΛθ as a sparse (n, q) matrix: Z's pattern, each row's entries ``z_i T``."""
        return sparse_rows(np.hstack(self._term_values(theta)), self._columns, self.q)

    def _zlambda_pair(self, values: list[np.ndarray]) -> tuple[sp.csr_matrix, sp.csc_matrix]:
        """ZΛθ and (ZΛθ)ᵀ at the terms' entries ``values``: the same two matrix objects at every θ.

        Their pattern is Z's; only the entries change with θ, and the two
        share them (scipy's ``.T`` of a CSR matrix is the CSC matrix on the
        same arrays), so overwriting ``data`` in place moves both.  Building
        a new sparse matrix and its transpose at every PIRLS cost more than
        the evaluation's products with them.  Whoever holds them from one
        PIRLS sees the next θ's entries: ``zlambda`` makes a matrix of its own.
        """
        pair = getattr(self, "_zl_pair", None)
        if pair is None:
            zl = sparse_rows(np.zeros(self._columns.shape), self._columns, self.q)
            self._zl_pair = pair = (zl, zl.T)
        np.concatenate(values, axis=1, out=pair[0].data.reshape(self._columns.shape))
        return pair

    def _term_values(self, theta: np.ndarray) -> list[np.ndarray]:
        """Per term, the (n, S) entries of ZΛ in its columns: ``z_i T``."""
        return [t.z @ T for t, T in zip(self.design.terms, self.layout.templates(theta))]

    def _block_sums(self, values: list[np.ndarray], sqrtw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The row sums ΛᵀZᵀWZΛ is made of, at weights sqrtw² (``values``: the terms' ZΛ entries).

        Per level of the first term, Σ wᵢ zᵢₛ zᵢₜ (``_level_sums``: Λ's
        template is applied in ``_factor``); the rest's products with the
        first term's columns (B) and with themselves (C, without the
        identity).  Each is a sum over rows: the sums of parts of the rows
        add up to those of all of them.
        """
        S0 = self.design.terms[0].size
        level = self._level_sums(sqrtw * sqrtw)
        q0 = self.design.terms[0].nlevels * S0
        if len(values) == 1:
            return level, np.empty((0, q0)), np.empty((0, 0))
        v0 = values[0] * sqrtw[:, None]
        vr = np.hstack(values[1:]) * sqrtw[:, None]
        if self._pair_index is not None:
            B = self._rest_by_first(vr, v0, (self.q - q0, q0))
            C = self._dense_products(self._pair_index[1], vr, vr, (self.q - q0, self.q - q0)) \
                if self._entries is None else self._entries.rest_sums(vr)
        else:
            rest = sparse_rows(vr, self._columns[:, S0:] - q0, self.q - q0)
            C = (rest.T @ rest).toarray()
            B = (rest.T @ sparse_rows(v0, self._columns[:, :S0], q0)).toarray()
        return level, B, C

    def _factor(self, sums: PwlsSums, template0: np.ndarray) -> BlockFactor:
        """The factor of ΛᵀZᵀWZΛ + I from its row sums (``template0``: the first term's Λ template
        T: its blocks are ``Tᵀ (Σ wᵢ zᵢ zᵢᵀ) T + I`` per level); ``PirlsError`` where that is not
        positive definite."""
        try:
            return self._block_factor(sums, template0)
        except LinAlgError:
            raise PirlsError("the penalized weighted cross products are not positive definite") from None

    def _block_factor(self, sums: PwlsSums, template0: np.ndarray) -> BlockFactor:
        first, S0 = self.design.terms[0], self.design.terms[0].size
        level = sums.level
        if S0 == 1:
            D = (level * template0[0, 0] ** 2 + 1.0).reshape(-1, 1, 1)
        elif S0 == 2:  # Tᵀ G T elementwise: a batched matmul of 2×2 blocks costs more
            (t00, _), (t10, t11) = template0
            a, b, c = level.T
            D = np.empty((first.nlevels, 2, 2))
            D[:, 0, 0] = t00 * t00 * a + 2.0 * t00 * t10 * b + t10 * t10 * c + 1.0
            D[:, 0, 1] = D[:, 1, 0] = t11 * (t00 * b + t10 * c)
            D[:, 1, 1] = t11 * t11 * c + 1.0
        else:
            rows, cols = self._tril0
            G = np.empty((first.nlevels, S0, S0))
            G[:, rows, cols] = G[:, cols, rows] = level
            D = template0.T @ G @ template0
            D[:, np.arange(S0), np.arange(S0)] += 1.0
        C = sums.C
        if isinstance(C, EntryMatrix) and C.pattern is not getattr(self._entries, "pattern", None):
            # a partition's sums: the driver factors densely, and reads the lower triangle (which
            # the entries hold; the block right of the diagonal one, Eᵀ, is left 0)
            C = C.toarray()
        if isinstance(C, EntryMatrix):
            return BlockFactor(D, sums.B, EntryMatrix(C.data + self._entries.identity, C.pattern), self._gram,
                               self._diagonal, self._entries)
        if not C.size:
            return BlockFactor(D, sums.B, C)
        C = C.copy()  # the sums stay sums (a partition's may be added to again)
        C.reshape(-1)[:: C.shape[0] + 1] += 1.0  # the diagonal, as a view (diag_indices_from costs more)
        return BlockFactor(D, sums.B, C, self._gram, self._diagonal)

    def _level_sums(self, w: np.ndarray) -> np.ndarray:
        """Per level of the first term, Σ wᵢ zᵢₛ zᵢₜ over its rows for s ≥ t: (ℓ, S(S+1)/2).

        The rows' products zᵢₛ zᵢₜ, sorted by level, are kept from the start
        (they do not depend on θ), so a PIRLS step costs a gather of w, one
        product and an ``np.add.reduceat``: several times less than a
        ``bincount`` per pair.
        """
        first = self.design.terms[0]
        if self._level_order is None:  # a level without rows: reduceat cannot skip it
            rows, cols = self._tril0
            return np.stack([np.bincount(first.codes, weights=w * first.z[:, s] * first.z[:, t],
                                         minlength=first.nlevels) for s, t in zip(rows, cols)], axis=1)
        order, starts, products = self._level_order
        return np.add.reduceat(products * w[order], starts, axis=1).T

    @staticmethod
    def _dense_products(pairs: tuple[list[tuple[int, int, np.ndarray]], np.ndarray | None], left: np.ndarray,
                        right: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Σᵢ leftᵢₐ rightᵢᵦ accumulated at each pair's flat position: a dense cross product by bincount.

        ``pairs``: per pair of slots (a, b), each row's position among the
        product's structural nonzeros; and those nonzeros' flat positions
        (None: every entry is one).  Sparse products (nearly nested terms)
        accumulate into their nonzeros only.
        """
        slots, positions = pairs
        sums = entry_sums(slots, left, right, shape[0] * shape[1] if positions is None else positions.size)
        if positions is None:
            return sums.reshape(shape)
        out = np.zeros(shape[0] * shape[1])
        out[positions] = sums
        return out.reshape(shape)

    def _rest_by_first(self, rest: np.ndarray, first: np.ndarray, shape: tuple[int, int]) -> np.ndarray | EntryMatrix:
        """B, the rest's products with the first term's columns (``_dense_products``), as its entries
        where F Fᵀ reads F's (``SparseGram.pattern``)."""
        pattern = None if self._gram is None else self._gram.pattern
        if pattern is None:
            return self._dense_products(self._pair_index[0], rest, first, shape)
        return EntryMatrix(entry_sums(self._pair_index[0][0], rest, first, pattern.positions.size), pattern)

    def _pair_indices(self, nested: bool) -> tuple[tuple, tuple] | None:
        """Per pair of entry slots of a row, where each row's product lands in the dense rest-by-first and
        rest-by-rest products (``_dense_products``), or among their entries; None where those would be
        too large to hold densely (sparse products instead), unless the rest is ``nested`` in the
        first term (F Fᵀ by ``SparseGram``): B is then held as its entries, and C too where it has a
        diagonal block (``RestEntries``)."""
        S0 = self.design.terms[0].size
        q0 = self.design.terms[0].nlevels * S0
        qr = self.q - q0
        if not qr or (qr * (q0 + qr) > _DENSE_PRODUCTS and not nested):
            return None
        rest, first = self._columns[:, S0:] - q0, self._columns[:, :S0]

        def pairs(left: np.ndarray, right: np.ndarray, width: int) -> tuple:
            flat = {(a, b): left[:, a] * width + right[:, b]
                    for a in range(left.shape[1]) for b in range(right.shape[1])}
            positions, index = np.unique(np.concatenate(list(flat.values())), return_inverse=True)
            if positions.size == qr * width:  # every entry a structural nonzero: no compression
                return [(a, b, i) for (a, b), i in flat.items()], None
            return [(a, b, i) for (a, b), i in zip(flat, np.split(index.reshape(-1), len(flat)))], positions

        return pairs(rest, first, q0), pairs(rest, rest, qr)

    def _gram_keys(self) -> np.ndarray | None:
        """F's entries (``SparseGram.entries``) where F Fᵀ is taken by its nonzero products, they being
        few (the rest nearly nested in the first term); None: a dense product."""
        first = self.design.terms[0]
        q0 = first.nlevels * first.size
        qr = self.q - q0
        if not qr:
            return None
        rest = self._columns[:, first.size:] - q0
        keys = SparseGram.entries(rest.reshape(-1), np.repeat(first.codes, rest.shape[1]), qr)
        # a bincount's product costs about as much as _GRAM_DENSE_COST multiplications in BLAS
        if SparseGram.products(keys, qr, first.size) * _GRAM_DENSE_COST >= qr * qr * q0:
            return None
        return keys

    def _sparse_gram(self, keys: np.ndarray | None) -> SparseGram | None:
        """F Fᵀ by its nonzero products on F's entries ``keys`` (see ``SparseGram``); None: a dense product."""
        if keys is None:
            return None
        first = self.design.terms[0]
        q0 = first.nlevels * first.size
        qr = self.q - q0
        # F held as its entries on B's structural nonzeros, where B is summed into them
        positions = None if self._pair_index is None else self._pair_index[0][1]
        return SparseGram(keys, qr, first.size, None if positions is None else EntryPattern(positions, (qr, q0)))

    def _diagonal_rows(self) -> int:
        """How many leading rows of the rest ``C − F Fᵀ`` has a diagonal block in (``BlockFactor``):
        the second term's levels, where that term is scalar and each level of the first term meets
        one of its levels at most (the first nested in it); else 0.

        Its block of C is then diagonal (one level per row), and F Fᵀ adds
        to an entry (r, r′) only through a level of the first term meeting
        both r and r′.
        """
        terms = self.design.terms
        if len(terms) < 2 or terms[1].size != 1:
            return 0
        first, second = terms[0].codes, terms[1].codes
        met = np.full(terms[0].nlevels, -1)
        met[first] = second
        return terms[1].nlevels if np.array_equal(met[first], second) else 0

    def _rest_entries(self) -> RestEntries | None:
        """The rest's C and C + I − F Fᵀ as their entries (``RestEntries``) where they are few: the rest
        has a diagonal block (``_diagonal_rows``), F Fᵀ is taken by its nonzero products, and the
        block below the diagonal one has few entries; None: dense.

        E's entries can sit only where F Fᵀ has some (C's entries are among
        them: a row's rest entries meet its level of the first term): the pairs
        ``SparseGram`` of F sums into, below the diagonal block.
        """
        m, d = self.q - self.design.terms[0].nlevels * self.design.terms[0].size, self._diagonal
        if self._gram is None or self._gram.pattern is None or not d:
            return None
        w = m - d  # the trailing block's width: 0 where the whole rest is diagonal
        r, c = np.divmod(np.unique(self._gram.target), m)
        below = (r >= d) & (c < d)
        keys = np.sort(c[below] * w + (r[below] - d))  # SparseGram's keys: by column (level)
        if w and SparseGram.products(keys, w, 1) * _GRAM_DENSE_COST >= w * w * d:
            return None
        rows, cols = (keys % w, keys // w) if w else (keys, keys)
        return RestEntries(self._gram, self._pair_index[1], SparseGram(
            keys, w, 1, EntryPattern(np.sort(rows * d + cols), (w, d))), m, d)

    def is_singular(self, theta: np.ndarray) -> bool:
        """lme4's ``isSingular``: a θ with a lower bound within 1e-4 of it."""
        return bool(np.any(np.isfinite(self.lower) & (np.asarray(theta)[: self.ntheta] < 1e-4)))

    # -- PIRLS ------------------------------------------------------------------
    def _working(self, eta: np.ndarray, mu: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """μ, √W and the working residual (y − μ)/μ' at η (μ = g⁻¹(η) when already at hand)."""
        fam = self.family
        mu = fam.linkinv(eta) if mu is None else mu
        mu_eta = fam.mu_eta_at(eta, mu)
        sqrtw = mu_eta * np.sqrt(self.weights / fam.variance(mu))
        return mu, sqrtw, (self.y - mu) / mu_eta

    def _penalized_deviance(self, eta: np.ndarray, u: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        mu = self.family.linkinv(eta)
        dev = self._dev(mu)
        return float(np.sum(dev) + u @ u), mu, dev

    def step_sums(self, zlt: sp.csc_matrix, values: list[np.ndarray], sqrtw: np.ndarray, z: np.ndarray,
                  joint: bool) -> PwlsSums:
        """The row sums of one PIRLS step at weights W = sqrtw² and working response z (``zlt``: (ZΛ)ᵀ,
        ``values``: the terms' ZΛ entries); with X's (``joint``) when β is solved too."""
        level, B, C = self._block_sums(values, sqrtw)
        w = sqrtw * sqrtw
        zwz = zlt @ (w * z)
        if not joint:
            return PwlsSums(level, B, C, zwz)
        Xw = self.X * sqrtw[:, None]
        return PwlsSums(level, B, C, zwz, zlt @ (self.X * w[:, None]), Xw.T @ Xw, Xw.T @ (sqrtw * z))

    def _solve(self, sums: PwlsSums, template0: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, BlockFactor]:
        """The PWLS solution (u, β or None, L) from one step's row sums (β where they hold X's)."""
        L = self._factor(sums, template0)
        cu = L.solve_lower(sums.zwz)
        if sums.xwx is None:
            return L.solve_upper(cu), None, L
        RZX = L.solve_lower(sums.zwx)
        try:
            RX = lower_cholesky(sums.xwx - RZX.T @ RZX)
        except LinAlgError:
            raise PirlsError("the fixed-effects cross products are not positive definite") from None
        cb = solve_lower(RX, sums.xwz - RZX.T @ cu)
        beta = solve_lower(RX, cb, transpose=True)
        return L.solve_upper(cu - RZX @ beta), beta, L

    def pirls(self, theta: np.ndarray, beta: np.ndarray | None = None,
              eta_start: np.ndarray | None = None, u_start: np.ndarray | None = None) -> PirlsState:
        """lme4's ``pwrssUpdate``: the conditional modes at θ, with β fixed or (``beta=None``) solved too.

        PIRLS starts from the linear predictor ``eta_start`` (default: the one
        lme4 keeps, ``lp0``, plus the offset).  Raises ``PirlsError``
        where lme4 stops: no convergence in 100 steps, step halving that does
        not lower the penalized deviance, NaN.
        """
        theta = np.asarray(theta, float)
        return self._pirls(MemoryRows(self, theta, beta, eta_start), theta, beta, u_start)

    def _pirls(self, rows, theta: np.ndarray, beta: np.ndarray | None, u_start: np.ndarray | None) -> PirlsState:
        """PIRLS's loop over a source of sums (``rows``: ``MemoryRows``, or a pass over partitions):
        each step solves from the sums at the current point, and ``rows.evaluate`` moves the point."""
        joint = beta is None
        template0 = self.layout.templates(theta)[0]
        # Where the first step halves toward if it ends in NaN (lme4 keeps the last fit's increments
        # between evaluations): the last modes, under this θ.  Halving toward u = β = 0, η = offset,
        # cannot leave a region where μ = g⁻¹(η) is undefined (an inverse link's η < 0).
        previous = self._modes
        u_old = (np.zeros(self.q) if previous is None else previous[0]) if u_start is None else u_start
        beta_old = (np.zeros(self.p) if previous is None else previous[1]) if joint else np.asarray(beta, float)
        oldpdev = np.finfo(float).max
        halvings = 0
        for it in range(1, _MAXIT + 1):
            u, b, L = self._solve(rows.sums(), template0)
            b = beta_old if b is None else b
            pdev = rows.evaluate(u, b)
            if abs((oldpdev - pdev) / pdev) < _TOL_PWRSS:
                self._modes = (u, b)
                return rows.state(u, b, L, it, halvings)
            if np.isnan(pdev) or pdev > oldpdev:
                for _ in range(_MAX_HALVINGS):
                    if not (np.isnan(pdev) or pdev > oldpdev):
                        break
                    u, b = (u_old + u) / 2.0, (beta_old + b) / 2.0 if joint else b
                    halvings += 1
                    pdev = rows.evaluate(u, b)
                if np.isnan(pdev):
                    raise PirlsError("PIRLS loop resulted in NaN value")
                if pdev - oldpdev > _TOL_PWRSS:
                    raise PirlsError("(maxstephalfit) PIRLS step-halvings failed to reduce deviance "
                                     "in pwrssUpdate")
            oldpdev, u_old = pdev, u
            if joint:
                beta_old = b
        raise PirlsError("pwrssUpdate did not converge in (maxit) iterations")

    def _start(self) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """η = offset + ``lp0`` and its μ, √W and working residual: where every PIRLS starts.

        The same for every evaluation until lp0 moves, so computed once per lp0.
        """
        lp0 = self.lp0
        cached = getattr(self, "_start_cache", None)
        if cached is None or cached[0] is not lp0:
            eta = self.offset + lp0
            self._start_cache = cached = (lp0, eta, self._working(eta))
        return cached[1], cached[2]

    @property
    def lp0(self) -> np.ndarray:
        """The linear predictor (without offset) PIRLS starts from: that of the first, joint PIRLS at θ₀.

        lme4 fits PIRLS once at its starting θ from ``family$initialize``'s
        μ, and then starts every evaluation of the first stage there
        (``mkGlmerDevfun``'s ``lp0``); the second stage starts from the
        first stage's optimum.
        """
        if self._lp0 is None:
            eta0 = self.family.linkfun(self.family.mustart(self.y, self.weights))
            state = self.pirls(self.start, None, eta_start=eta0)
            self._lp0 = state.eta - self.offset
        return self._lp0

    def _restart(self, theta: np.ndarray, state: PirlsState) -> None:
        """Start every later PIRLS where this one (at θ) ended: lme4's new ``lp0``."""
        self._lp0 = state.eta - self.offset

    # -- objectives -------------------------------------------------------------
    def laplace(self, state: PirlsState) -> float:
        """lme4's Laplace deviance: ``log|L|² + ‖u‖² + aic`` (the family's −2 log-likelihood)."""
        aic = self._aic(state.mu, float(np.sum(state.dev_resid)))
        return float(state.ldL2 + state.u @ state.u + aic)

    def quadrature(self, state: PirlsState, theta: np.ndarray) -> float:
        """lme4's ``glmerAGQ``: adaptive Gauss–Hermite quadrature around the modes, per level.

        The deviance residuals (not ``aic``) enter here, as in lme4, so its
        nAGQ > 1 deviance is on the scale of the deviance residuals.
        """
        sd = 1.0 / state.L.diagonal()
        level = self._level_deviances(theta, state, [z * sd for z, _, _ in self._agq if z != 0])
        devc0 = state.u * state.u + level[0]
        nodes = iter(level[1:])
        mult = np.zeros(self.q)
        for z, w, ldnorm in self._agq:
            if z == 0:
                mult += w
                continue
            u = state.u + z * sd
            mult += np.exp(-0.5 * (u * u + next(nodes) - devc0) - ldnorm) * w / np.sqrt(2.0 * np.pi)
        return float(np.sum(devc0) + state.ldL2 - 2.0 * np.sum(np.log(mult)))

    def _level_deviances(self, theta: np.ndarray, state: PirlsState, shifts: list[np.ndarray]) -> np.ndarray:
        """Per level of the single scalar term, the sums of deviance residuals at the modes and at the
        modes moved by each of ``shifts``: (1 + len(shifts), q)."""
        zl = self.zlambda(theta)
        at_modes = np.bincount(self.design.terms[0].codes, weights=state.dev_resid, minlength=self.q)
        return np.vstack([at_modes, self.shifted_deviances(zl, state.eta - zl @ state.u, state.u, shifts)])

    def shifted_deviances(self, zl: sp.csr_matrix, base: np.ndarray, u: np.ndarray,
                          shifts: list[np.ndarray]) -> np.ndarray:
        """Per level of the single scalar term, Σ deviance residuals at η = base + ZΛ(u + shift), one row
        per shift (``base``: the offset and Xβ, per row)."""
        codes = self.design.terms[0].codes
        return np.array([np.bincount(codes, weights=self._dev(self.family.linkinv(base + zl @ (u + shift))),
                                     minlength=self.q) for shift in shifts]).reshape(len(shifts), self.q)

    def stage1_objective(self, theta: np.ndarray) -> float:
        """The ``nAGQ = 0`` deviance at θ: β inside PIRLS; ``inf`` where PIRLS fails."""
        try:
            return self.laplace(self.pirls(theta, None))
        except PirlsError:
            return np.inf

    def objective(self, par: np.ndarray) -> float:
        """The deviance at (θ, β) (Laplace or quadrature); ``inf`` where PIRLS fails."""
        theta, beta = par[: self.ntheta], par[self.ntheta:]
        try:
            state = self.pirls(theta, beta)
        except PirlsError:
            return np.inf
        return self.laplace(state) if self.nagq <= 1 else self.quadrature(state, theta)

    # -- fitting -----------------------------------------------------------------
    def optimize(self, maxeval: int = 100_000) -> GlmmFit:
        """lme4's two stages, its boundary check, derivatives, convergence checks and vcov.

        BLAS runs single-threaded: the factorizations are small, and spinning
        BLAS threads make them many times slower on busy cores (see
        ``mixedfit.model.MixedModel.blas_threads``).
        """
        if isinstance(maxeval, bool) or not isinstance(maxeval, (int, np.integer)) or maxeval < 1:
            raise ModelSpecError(f"maxeval must be a positive whole number of evaluations, not {maxeval!r}")
        with blas_controller().limit(limits=1, user_api="blas"):
            return self._optimize(maxeval)

    def _optimize(self, maxeval: int) -> GlmmFit:
        try:
            _ = self.lp0  # the first PIRLS, from the family's starting μ
        except PirlsError as error:
            raise PirlsError(f"{error}, at glmer's starting values (lme4 stops there too): a fixed "
                             "effect may separate the response completely, or the model be too rich "
                             "for the data") from None
        if self.nagq == 0:  # stage 1 is the fit: minimized as closely as stage 2 (see _minimize)
            stage1 = self._minimize(self.stage1_objective, self.start, self.lower,
                                    np.full(self.ntheta, _THETA_STEP), maxeval)
            stage1 = self._snap_to_boundary(stage1, self.stage1_objective)
            state = self.pirls(stage1.final, None)
            self._restart(stage1.final, state)
            conv = check_convergence(stage1, self.is_singular(stage1.final), derivatives=False)
            return GlmmFit(stage1.final.copy(), state.beta, state, stage1, stage1, conv,
                           self.vcov_rx(stage1.final, state), [])
        stage1, first = self._stage1(maxeval)
        start = np.concatenate([stage1.final, first.beta])
        opt = self._snap_to_boundary(self._stage2(start, first, stage1.final, maxeval, restarts=0), self.objective)
        derivatives = paired_derivatives(self.objective, opt.final, opt.fmin)
        if self._promises_more(opt, *derivatives):
            again = self._stage2(start, first, stage1.final, maxeval, restarts=_RESTARTS - 1, resume=opt.final)
            again = self._snap_to_boundary(again, self.objective)
            if again.fmin < opt.fmin:
                opt, derivatives = dataclasses.replace(again, feval=opt.feval + again.feval), None
        return self._finish(opt, stage1, derivatives)

    def _promises_more(self, opt: OptSummary, gradient: np.ndarray, hessian: np.ndarray) -> bool:
        """Whether BOBYQA's optimum warrants its restarts: the Newton step's predicted decrease
        ``½ gᵀH⁻¹g`` over the parameters off their bounds, beyond ``_RESTART_GAIN`` of the deviance,
        or a Hessian there that is not positive definite.

        The derivatives are needed at the optimum anyway (convergence checks,
        vcov); a BOBYQA restart costs 2k + 1 evaluations before its first
        step, and on every glmer fixture gained less than 1e-12 of the
        deviance.
        """
        free = np.concatenate([opt.final[: self.ntheta] > self.lower, np.ones(self.p, bool)])
        g, H = gradient[free], hessian[np.ix_(free, free)]
        try:
            factor = np.linalg.cholesky(H)
        except np.linalg.LinAlgError:
            return True
        step = np.linalg.solve(factor, g)
        return bool(not np.all(np.isfinite(step)) or 0.5 * step @ step > _RESTART_GAIN * abs(opt.fmin))

    def _stage1(self, maxeval: int) -> tuple[OptSummary, PirlsState]:
        """θ by BOBYQA with β inside PIRLS; PIRLS at its optimum becomes ``lp0``.

        Stage 2 starts every PIRLS from there, as lme4 does.  The deviance
        lme4 reports depends on that start: PIRLS stops at a relative change
        of 1e-7 in the penalized deviance, and log|L|² is not stationary in
        u, so the Laplace deviance moves by up to ~1e-4 with the start.
        """
        stage1 = dataclasses.replace(bobyqa(self.stage1_objective, self.start, self.lower, maxeval=maxeval),
                                     optimizer="bobyqa")
        first = self.pirls(stage1.final, None)
        self._restart(stage1.final, first)
        return stage1, first

    def _finish(self, opt: OptSummary, stage1: OptSummary,
                derivatives: tuple[np.ndarray, np.ndarray] | None = None) -> GlmmFit:
        """The fitted numbers at stage 2's optimum: derivatives (unless given), PIRLS there, convergence
        checks, vcov."""
        opt.gradient, opt.hessian = (paired_derivatives(self.objective, opt.final, opt.fmin)
                                     if derivatives is None else derivatives)
        theta, beta = opt.final[: self.ntheta], opt.final[self.ntheta:]
        state = self.pirls(theta, beta)
        conv = check_convergence(opt, self.is_singular(theta))
        vcov, vcov_warnings = self._vcov(opt, theta, state)
        return GlmmFit(theta.copy(), beta.copy(), state, opt, stage1, conv, vcov, vcov_warnings)

    def fit_at(self, theta: np.ndarray, beta: np.ndarray | None = None,
               stage1_theta: np.ndarray | None = None) -> GlmmFit:
        """The fitted numbers at given θ and β, without optimizing.

        What glmer reports at its own estimates can be rebuilt from them:
        the tests print the summary at glmer's optimum this way.  PIRLS
        starts where glmer's second stage starts it, at the first stage's
        optimum: ``stage1_theta`` (glmer's nAGQ = 0 θ), or else this
        model's own first stage.  With nagq = 0, β comes from PIRLS
        (``beta`` is ignored).
        """
        theta = np.asarray(theta, float)
        with blas_controller().limit(limits=1, user_api="blas"):
            if self.nagq == 0:
                state = self.pirls(theta, None)
                opt = OptSummary("none", theta.copy(), self.lower.copy(), theta.copy(), self.laplace(state),
                                 0, 0, "evaluated at the given parameters")
                conv = check_convergence(opt, self.is_singular(theta), derivatives=False)
                return GlmmFit(theta.copy(), state.beta, state, opt, opt, conv, self.vcov_rx(theta, state), [])
            if stage1_theta is None:
                stage1, _ = self._stage1(100_000)
            else:
                start = np.asarray(stage1_theta, float)
                stage1 = OptSummary("none", start.copy(), self.lower.copy(), start.copy(),
                                    self.stage1_objective(start), 0, 0, "evaluated at the given parameters")
                self._restart(start, self.pirls(start, None))
            par = np.concatenate([theta, np.asarray(beta, float)])
            opt = OptSummary("none", par.copy(), np.concatenate([self.lower, np.full(self.p, -np.inf)]),
                             par.copy(), self.objective(par), 0, 0, "evaluated at the given parameters")
            return self._finish(opt, stage1)

    def _stage2(self, start: np.ndarray, first: PirlsState, theta1: np.ndarray, maxeval: int,
                restarts: int = _RESTARTS, resume: np.ndarray | None = None) -> OptSummary:
        """θ and β jointly by BOBYQA from stage 1's optimum, β in whitened coordinates.

        β = β₁ + Cγ with C Cᵀ stage 1's covariance of β̂ (R_X's): BOBYQA's
        steps are alike in every direction, and in γ the deviance is about
        equally curved in each, however the predictors are scaled or
        correlated (an intercept next to an uncentred HEIGHT, say).  lme4's
        Nelder-Mead sizes its simplex by the standard errors instead, and
        can stop far from the optimum on such fits.  Restarts from the
        optimum while they still lower the deviance, at most ``restarts``
        times; ``resume``: start at these (θ, β) with BOBYQA's restart steps.
        """
        C = self._whitening(theta1, first)
        beta1 = start[self.ntheta:]

        def unwhiten(par: np.ndarray) -> np.ndarray:
            return np.concatenate([par[: self.ntheta], beta1 + C @ par[self.ntheta:]])

        def objective(par: np.ndarray) -> float:
            return self.objective(unwhiten(par))

        step = np.concatenate([np.full(self.ntheta, _THETA_STEP), np.full(self.p, _BETA_STEP)])
        lower = np.concatenate([self.lower, np.full(self.p, -np.inf)])
        if resume is None:
            x0 = np.concatenate([start[: self.ntheta], np.zeros(self.p)])
        else:
            x0 = np.concatenate([resume[: self.ntheta], np.linalg.solve(C, resume[self.ntheta:] - beta1)])
            step = step / 100.0
        opt = self._minimize(objective, x0, lower, step, maxeval, restarts)
        return dataclasses.replace(opt, initial=start.copy(), final=unwhiten(opt.final), lower=lower)

    @staticmethod
    def _minimize(objective, x0: np.ndarray, lower: np.ndarray, step: np.ndarray, maxeval: int,
                  restarts: int = _RESTARTS) -> OptSummary:
        """BOBYQA to tight tolerances, restarted from its optimum while that still lowers the objective.

        lme4's optimizers stop on looser criteria (Nelder-Mead's ``FtolAbs``
        of 1e-5 in stage 2); these tolerances reach an objective at or below
        glmer's on every reference fit.
        """
        opt = bobyqa(objective, x0, lower, maxeval=maxeval, initial_step=step, xtol_rel=0.0,
                     xtol_abs=_XTOL_ABS, ftol_abs=_FTOL_ABS)
        for _ in range(restarts):
            again = bobyqa(objective, opt.final, lower, maxeval=maxeval, initial_step=step / 100.0,
                           xtol_rel=0.0, xtol_abs=_XTOL_ABS, ftol_abs=_FTOL_ABS)
            gain = opt.fmin - again.fmin
            again = dataclasses.replace(again, feval=opt.feval + again.feval, initial=opt.initial)
            if gain <= 0:
                opt.feval = again.feval
                break
            opt = again
            if gain <= _RESTART_GAIN * abs(opt.fmin):
                break
        return dataclasses.replace(opt, optimizer="bobyqa")

    def _whitening(self, theta: np.ndarray, state: PirlsState) -> np.ndarray:
        """C with C Cᵀ = (R_X R_Xᵀ)⁻¹ at a PIRLS state; the identity where that is not positive definite."""
        try:
            C = np.linalg.cholesky(self._unscaled(theta, state))
        except np.linalg.LinAlgError:
            return np.eye(self.p)
        return C if np.all(np.isfinite(C)) else np.eye(self.p)

    def _snap_to_boundary(self, opt: OptSummary, objective) -> OptSummary:
        """lme4's ``check.boundary``: θ within 1e-5 of its bound goes to the bound where that is no worse."""
        near = np.flatnonzero((opt.final[: self.ntheta] - self.lower > 0)
                              & (opt.final[: self.ntheta] - self.lower < _BOUNDARY_TOL))
        for i in near:
            trial = opt.final.copy()
            trial[i] = self.lower[i]
            value = objective(trial)
            # within the optimizer's tolerance: at θ ≈ 0 the deviance is flat to rounding
            if value <= opt.fmin + _FTOL_ABS:
                opt.final, opt.fmin = trial, value
        return opt

    def _unscaled(self, theta: np.ndarray, state: PirlsState) -> np.ndarray:
        """(R_X R_Xᵀ)⁻¹ at the state's weights (lme4's ``unsc()``)."""
        Xw = self.X * state.sqrtw[:, None]
        RZX = state.L.solve_lower(self.zlambda(theta).T @ (Xw * state.sqrtw[:, None]))
        try:
            return np.linalg.inv(Xw.T @ Xw - RZX.T @ RZX)
        except np.linalg.LinAlgError:
            return np.full((self.p, self.p), np.nan)

    def pwrss(self, state: PirlsState) -> float:
        """lme4's penalized weighted residual sum of squares: Pearson χ² + ‖u‖²."""
        pearson = (self.y - state.mu) * np.sqrt(self.weights / self.family.variance(state.mu))
        return float(pearson @ pearson + state.u @ state.u)

    def sigma(self, state: PirlsState) -> float:
        """lme4's σ: 1 for binomial and Poisson, else √(pwrss/n)."""
        if not self.family.has_dispersion:
            return 1.0
        return float(np.sqrt(self.pwrss(state) / self.design.nobs))

    def vcov_rx(self, theta: np.ndarray, state: PirlsState) -> np.ndarray:
        """σ² (R_X R_Xᵀ)⁻¹: lme4's vcov where no Hessian is at hand."""
        return self.sigma(state) ** 2 * self._unscaled(theta, state)

    def _vcov(self, opt: OptSummary, theta: np.ndarray, state: PirlsState) -> tuple[np.ndarray, list[str]]:
        """lme4's ``vcov.merMod``: the β block of 2H⁻¹ when positive definite, else from R_X (with its warning)."""
        try:
            inv = np.linalg.solve(opt.hessian, np.eye(opt.hessian.shape[0]))
        except np.linalg.LinAlgError:
            inv = None
        if inv is not None and np.all(np.isfinite(inv)):
            block = inv[self.ntheta:, self.ntheta:]
            V = block + block.T
            if np.linalg.eigvalsh(V).min() > 0:
                return V, []
        return self.vcov_rx(theta, state), [_VCOV_WARNING]


def paired_derivatives(objective, x: np.ndarray, fx: float, delta: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian by central differences of lme4's ``deriv12`` order, in half its evaluations.

    The gradient and the diagonal are ``deriv12``'s (steps ±δ along each
    axis).  Each off-diagonal entry comes from the two diagonal steps
    ``±δ(eᵢ + eⱼ)``::

        Hᵢⱼ = [f(x + δ(eᵢ+eⱼ)) + f(x − δ(eᵢ+eⱼ)) − 2f(x)] / (2δ²) − (Hᵢᵢ + Hⱼⱼ)/2

    exact for a quadratic and, like deriv12's four-point cross stencil,
    accurate to O(δ²): 2k + k(k−1) evaluations for k parameters, not
    2k + 2k(k−1).  Each evaluation is a PIRLS fit, and for glmer's checks
    and vcov these were as many as the whole optimization.  No bounds, as
    deriv12 is called by lme4.

    Examples
    --------
    >>> f = lambda v: float(v[0] ** 2 + 3 * v[0] * v[1] + 2 * v[1] ** 2)
    >>> g, H = paired_derivatives(f, np.array([1.0, 2.0]), f(np.array([1.0, 2.0])))
    >>> np.round(g, 6).tolist(), np.round(H, 6).tolist()
    ([8.0, 11.0], [[2.0, 3.0], [3.0, 4.0]])
    """
    n = x.size
    grad, hess = np.empty(n), np.empty((n, n))
    eye = np.eye(n) * delta
    for j in range(n):
        fadd, fsub = objective(x + eye[j]), objective(x - eye[j])
        hess[j, j] = (fadd - 2.0 * fx + fsub) / delta**2
        grad[j] = (fadd - fsub) / (2.0 * delta)
    for j in range(n):
        for i in range(j):
            step = eye[i] + eye[j]
            both = (objective(x + step) + objective(x - step) - 2.0 * fx) / (2.0 * delta**2)
            hess[i, j] = hess[j, i] = both - 0.5 * (hess[i, i] + hess[j, j])
    return grad, hess


def _gauss_hermite(k: int) -> list[tuple[float, float, float]]:
    """lme4's ``GHrule(k)``: nodes z, weights for the standard normal, log φ(z)."""
    z, w = np.polynomial.hermite_e.hermegauss(k)
    w = w / np.sqrt(2.0 * np.pi)
    z[np.abs(z) < 1e-14] = 0.0  # the middle node of an odd rule is exactly 0 in lme4's table
    return [(float(a), float(b), float(-0.5 * a * a - 0.5 * np.log(2.0 * np.pi))) for a, b in zip(z, w)]

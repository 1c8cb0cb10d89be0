"""Model terms: the fixed-effects matrix and the random-effects terms of a model.

A ``Design`` is what the formula and the data become before any fitting:
the response, the fixed-effects matrix ``X`` with lme4's column names (rank
deficient columns already dropped), prior weights, offset, and one
``RandomEffectsTerm`` per bar term, in lme4's order.
``build_design`` makes one, as lme4's ``lFormula`` does.

Examples
--------
>>> import mixedfit as mf
>>> d = build_design("Reaction ~ Days + (Days | Subject)", mf.load_dataset("sleepstudy"))
>>> d.xnames, [(t.group, t.cnames) for t in d.terms]
(['(Intercept)', 'Days'], [('Subject', ['(Intercept)', 'Days'])])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.linalg import lapack

from .errors import (DataError, FormulaError, MixedFitWarning, ModelSpecError, RankDeficiencyWarning,
                     ScaleWarning, caret_message, warn)
from .family import Family
from .formula import deparse, deparse_formula, lme4_deparse, parse_formula
from .formula.evaluate import Evaluator, Logical
from .formula.frame import ModelFrame, model_frame
from .formula.grouping import grouping_factor, grouping_variables
from .formula.contrasts import ContrastMatrix, default_contrasts
from .formula.model_matrix import model_matrix
from .formula.rvalues import RFactor
from .formula.spec import ParsedFormula

__all__ = ["RandomEffectsTerm", "Design", "build_design", "by_row_label", "frame_of_columns",
           "build_model_frame", "check_levels", "drop_rank_deficient", "from_table", "model_variables",
           "plural", "warn_on_scales", "RANK_TOLERANCE", "as_dataframe", "check_response_varies", "preview",
           "sparse_rows", "tall_r_factor"]

#: Tolerance of the rank checks on X (lme4's ``chkRank.drop.cols``)
RANK_TOLERANCE = 1e-7
_RANK_MARGIN = 1e3  # how far above dqrdc2's threshold an unpivoted QR must stay to skip the port
_SCALE_TOLERANCE = 1000.0  # lme4's checkScaleX
SCALE_MESSAGE = "Some predictor variables are on very different scales: consider rescaling"
# Residual norm / response norm at or below which y = Xβ exactly, up to rounding:
# a thousand rounding units.  The residual a QR leaves of a response that is an
# exact linear function came to at most 50 units (n up to 3e5, p up to 20, columns
# of mean 1e6); unit noise on a response of mean 1e12 is 4500 (1e-10 refused it
# from means of 3e10 on, which lme4 fits).
_EXACT_FIT_TOLERANCE = 1000 * np.finfo(float).eps


@dataclass
class RandomEffectsTerm:
    """One random-effects term ``(lhs | group)``.

    Attributes
    ----------
    group : str
        The grouping factor's label as lme4 prints it (``"Subject"``, ``"a:b"``).
    cnames : list of str
        Names of the columns of ``z``, as lme4 prints them
        (``"(Intercept)"``, ``"Days"``, ``"MachineB"``).
    z : ndarray, shape (n, S)
        The term's model matrix (one row per observation).
    codes : ndarray of intp, shape (n,)
        Index into ``levels`` of each observation's level.
    levels : list of str
        The grouping factor's levels, in R's order; unused levels dropped.
    correlated : bool
        False for the pieces of a ``||`` term (diagonal covariance template
        is still lower triangular per piece; each piece is its own term).
    label : str
        The term as lme4 deparses it, ``names(getME(fit, "Ztlist"))``
        (``"Days | Subject"``, ``"0 + Days | Subject"``).
    """

    group: str
    cnames: list[str]
    z: np.ndarray
    codes: np.ndarray
    levels: list[str]
    correlated: bool = True
    label: str = ""

    @property
    def nlevels(self) -> int:
        return len(self.levels)

    @property
    def size(self) -> int:
        """S, the number of columns of the term's template."""
        return self.z.shape[1]

    @property
    def ntheta(self) -> int:
        return self.size * (self.size + 1) // 2

    @property
    def columns(self) -> np.ndarray:
        """Per row, the columns of the term's block (level-major) its S entries fall in, shape (n, S)."""
        return self.codes[:, None] * self.size + np.arange(self.size)[None, :]


def sparse_rows(values: np.ndarray, columns: np.ndarray, width: int) -> sp.csr_matrix:
    """The (n, width) sparse matrix whose row i holds ``values[i]`` at ``columns[i]`` (both (n, k),
    each row's columns ascending): a Z, or ZΛ, from its entries."""
    n, k = values.shape
    return sp.csr_matrix((values.ravel(), columns.ravel(), np.arange(0, n * k + 1, k)), shape=(n, width))


@dataclass
class Design:
    """A model's data, ready for the engine.

    Attributes
    ----------
    y : ndarray, shape (n,)
        Response.
    X : ndarray, shape (n, p)
        Fixed-effects matrix, full column rank.
    xnames : list of str
        lme4 names of X's columns.
    terms : list of RandomEffectsTerm
        Random-effects terms in lme4's order (that of ``getME(fit, "theta")``).
    weights : ndarray or None
        Prior weights (None: all one).
    offset : ndarray or None
        Offset (None: zero); the sum of ``offset()`` terms and ``offset=``.
    response : str
        The response's name as written in the formula.
    formula : str
        The formula as lme4 prints it: deparsed, ``||`` expanded
        (``Reaction ~ Days + ((1 | Subject) + (0 + Days | Subject))``).
    formula_written : str
        The formula as written, deparsed (lmerTest prints this one).
    dropped_xnames : list of str
        Fixed-effect columns dropped for rank deficiency.
    rows : pandas.Index
        The index labels of the data rows used (after NA removal).
    n_dropped : int
        Data rows left out of the fit: rows with a missing value in a
        variable of the model (``na_action="omit"``) and rows of zero weight.
        lme4 keeps no such count (``na.omit`` leaves its summary unchanged),
        so the summary does not show it either; ``nobs`` is what is fitted.
    xlevels : dict of str to list of str
        The levels of each factor of the fixed part and of the random-effects
        terms' left-hand sides, keyed by the deparsed variable (``"Machine"``,
        ``"C(f, sum)"``), after unused levels are dropped: R's
        ``.getXlevels``, with which new data are coded for prediction.
    contrasts : dict of str to ContrastMatrix
        The contrasts of each factor of ``xlevels`` on its levels (R's
        ``attr(X, "contrasts")``): an ordered factor's polynomial ones, those
        set with ``C()``; new data are coded with them, whatever their own
        columns' types.
    badly_scaled : bool
        lme4's checkScaleX warned that X's columns are on very different
        scales (its summary repeats the warning).
    covariate_means : dict of str to float
        The mean over the rows fitted of each numeric data column that the
        fixed-effects variables read (``Days`` for ``log(Days)``): where
        emmeans' reference grid puts the covariates.
    dropped_coef : ndarray or None
        Each dropped column of X (``dropped_xnames``) as a combination of the
        kept ones (least squares, shape (p, len(dropped_xnames))): the
        non-estimable directions that emmeans reports as ``nonEst``.
    trials : ndarray or None
        For a GLMM: R's binomial ``n`` per row (the trials of a
        ``cbind(successes, failures)`` response, else ones); ``y`` is then
        the proportion and ``weights`` the prior weights times ``n``, as
        R's ``family$initialize`` leaves them.  None for a linear model.
    parsed : ParsedFormula or None
        The formula parsed: its fixed terms (R's ``terms()``) and bar terms,
        for the stages after the fit (prediction, tests of terms), which so
        need not parse ``formula`` again.
    assign : dict of str to int
        R's ``attr(X, "assign")`` by column name: for each column made (those
        dropped for rank deficiency too, so that a subset of the columns
        still finds its terms), 0 for the intercept, else 1 + the index of its
        term among ``parsed.fixed_terms.terms``.
    suffixes : dict of str to tuple of str
        For each column made, what each variable of its term adds to the
        variable's name in the column's name: a factor's level or contrast
        (``"B"``, ``".L"``), a matrix's column number, ``""`` for a number
        (``recipeB:temp``: ``("B", "")``).
    transforms : dict
        The state of the data-dependent transforms found on the data
        (``poly``'s coefficients, ``scale``'s centre and scale, spline
        knots), by expression: R's ``predvars``, with which new rows are
        transformed as these were (``Evaluator(newdata, ..., state)``).
    xy_r : ndarray or None
        R of the QR of ``[X, y − offset]`` that ``build_design`` took for X's
        rank, which the engine's ``Frame`` reads instead of taking it again;
        None where X lost columns, and in any copy (``dataclasses.replace``
        leaves it out: a new y would not match it).
    """

    y: np.ndarray
    X: np.ndarray
    xnames: list[str]
    terms: list[RandomEffectsTerm]
    response: str
    formula: str
    rows: pd.Index
    weights: np.ndarray | None = None
    offset: np.ndarray | None = None
    dropped_xnames: list[str] = field(default_factory=list)
    n_dropped: int = 0
    formula_written: str = ""
    xlevels: dict[str, list[str]] = field(default_factory=dict)
    contrasts: dict[str, ContrastMatrix] = field(default_factory=dict)
    badly_scaled: bool = False
    covariate_means: dict[str, float] = field(default_factory=dict)
    dropped_coef: np.ndarray | None = None
    trials: np.ndarray | None = None
    parsed: ParsedFormula | None = None
    assign: dict[str, int] = field(default_factory=dict)
    suffixes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    transforms: dict[str, Any] = field(default_factory=dict)
    xy_r: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def nobs(self) -> int:
        return self.y.shape[0]


def from_table(data: Any) -> Any:
    """A table with ``to_pandas()`` (polars, pyarrow) as a pandas DataFrame; anything else as it is.

    Examples
    --------
    >>> import pyarrow as pa
    >>> from_table(pa.table({"x": [1, 2]})).shape
    (2, 1)
    """
    if not isinstance(data, (pd.DataFrame, Mapping)) and callable(getattr(data, "to_pandas", None)):
        try:
            return data.to_pandas()
        except (ImportError, TypeError, ValueError) as error:
            raise DataError(f"could not convert the {type(data).__name__} to a pandas "
                            f"DataFrame: {error}") from None
    return data


def as_dataframe(data: Any) -> pd.DataFrame:
    """The data as a DataFrame: a dict of arrays, or a table with ``to_pandas()``
    (polars, pyarrow), is converted; the caller's object is never modified."""
    data = from_table(data)
    if isinstance(data, Mapping):
        data = frame_of_columns(data)
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame or a dict of arrays, not "
                        f"{type(data).__name__}")
    if len(data) == 0:
        raise DataError("0 (non-NA) cases: the data have no rows")
    return data


def _shape(values: Any) -> tuple[int, ...]:
    """The shape of a column as given: () for a single value (a string among them)."""
    if isinstance(values, (str, bytes)) or values is None or np.isscalar(values):
        return ()
    try:
        return tuple(np.shape(values))
    except ValueError:  # ragged nested lists: one object per row
        return (len(values),)


def frame_of_columns(columns: Mapping, what: str = "data", broadcast: bool = False
                     ) -> pd.DataFrame:
    """A dict of columns as a DataFrame, refusing what pandas would fail on.

    Parameters
    ----------
    columns : mapping of str to array_like
        One-dimensional columns of one length.
    what : str
        The argument's name, for messages.
    broadcast : bool
        Single values fill their column, as pandas does, and a dict of single
        values is one row (``predict({"Days": 2, "Subject": "308"})``).
        Otherwise they are refused: a model is not fitted to one row, and a
        single value among columns is most likely a mistake.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    DataError
        A column of more than one dimension, columns of different lengths,
        or (without *broadcast*) single values.

    Examples
    --------
    >>> frame_of_columns({"x": 1.5, "g": "a"}, broadcast=True).shape
    (1, 2)
    >>> frame_of_columns({"x": [1.5, 2.5], "g": "a"}, broadcast=True)["g"].tolist()
    ['a', 'a']
    """
    shapes = {name: _shape(values) for name, values in columns.items()}
    wide = [f"'{name}' (shape {shape})" for name, shape in shapes.items() if len(shape) > 1]
    if wide:
        raise DataError(f"column {', '.join(wide)} of {what} has more than one dimension; "
                        "each column must be one value per row")
    if shapes and all(shape == () for shape in shapes.values()):
        if broadcast:
            return pd.DataFrame({name: [value] for name, value in columns.items()})
        raise DataError(f"{what} is a dict of single values (one row), not of columns: give "
                        "each name an array of values, one per row")
    lengths = {name: shape[0] if shape else 1 for name, shape in shapes.items()
               if shape or not broadcast}
    if len(set(lengths.values())) > 1:
        raise DataError(f"the columns of {what} have different lengths: "
                        + ", ".join(f"'{k}' ({v})" for k, v in lengths.items()))
    return pd.DataFrame(dict(columns))


def by_row_label(values: Any, rows: pd.Index, what: str, where: str = "the data") -> Any:
    """A pandas Series put in the order of *rows* by its index, as pandas aligns.

    A Series whose index holds exactly the row labels of *rows*, in another
    order, is reordered (lme4 takes weights from the data frame, row by row);
    one whose index differs is refused, since using it by position would give
    values to the wrong rows.  Anything else is returned as it is.

    Examples
    --------
    >>> by_row_label(pd.Series([1.0, 2.0], index=[1, 0]), pd.RangeIndex(2), "weights").tolist()
    [2.0, 1.0]
    """
    if not isinstance(values, pd.Series) or values.index.equals(rows):
        return values
    same_rows = len(values) == len(rows) and values.index.is_unique and rows.is_unique \
        and values.index.isin(rows).all()
    if same_rows:
        return values.reindex(rows)
    strangers = values.index[~values.index.isin(rows)]
    if len(strangers):
        detail = (f"{plural(len(strangers), 'label')} of its index ({preview(strangers)}) "
                  f"{'is' if len(strangers) == 1 else 'are'} not among them")
    elif len(values) != len(rows):
        detail = f"its index has {len(values)} labels for {len(rows)} rows"
    else:
        detail = "labels repeat, so rows cannot be matched by label"
    raise DataError(f"{what} is a pandas Series whose index does not match the rows of {where}: "
                    f"{detail}; align it (.reindex) or pass .to_numpy() to use it by position")


def _extra_column(argument: Any, what: str, evaluator: Evaluator) -> tuple[str, np.ndarray]:
    """The weights or offset argument: a column name or one value per data row.

    Returns the name to report it by (the column's, else *what*) and its values.
    """
    n = len(evaluator.data)
    if isinstance(argument, str):
        value = evaluator.column(argument)
        if isinstance(value, RFactor):
            raise DataError(f"{what} column '{argument}' is not numeric")
        return argument, np.asarray(value, dtype=float)
    argument = by_row_label(argument, evaluator.data.index, what)
    try:
        values = np.asarray(argument, dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"{what} must be a column name or numbers; got a "
                        f"{type(argument).__name__} holding {preview(argument)}") from None
    if values.ndim != 1 or len(values) != n:
        raise DataError(f"{what} must be a column name or {n} values (one per data row), "
                        f"not an array of shape {values.shape}")
    return what, values


def _response(parsed: ParsedFormula, frame: ModelFrame) -> np.ndarray:
    value = frame[parsed.response]
    label = parsed.response_label
    if isinstance(value, RFactor):
        raise DataError(f"the response '{label}' is not numeric (it holds text or categories, "
                        f"e.g. {value.levels[0]!r}); lme4: response must be numeric")
    values = value.values.astype(float) if isinstance(value, Logical) else value.values
    if values.ndim == 2 and values.shape[1] != 1:
        raise DataError(f"the response '{label}' has {values.shape[1]} columns; it needs one")
    return values.reshape(-1)


def _glm_response(parsed: ParsedFormula, frame: ModelFrame, family: Family) -> np.ndarray:
    """A GLMM's response as R's ``family$initialize`` takes it: numbers, one or two columns.

    A two-level factor counts its second level as success (R: ``y != levels(y)[1]``).
    """
    value = frame[parsed.response]
    label = parsed.response_label
    if isinstance(value, RFactor):
        if family.name != "binomial":
            raise DataError(f"the response '{label}' is a factor (e.g. {value.levels[0]!r}); "
                            f"the {family.name} family needs numbers")
        if len(value.levels) != 2:
            raise DataError(f"the binomial response '{label}' is a factor with "
                            f"{len(value.levels)} levels ({preview(value.levels)}); it needs two: "
                            "the first is failure, the second success")
        return (value.codes != 0).astype(float)
    values = value.values.astype(float) if isinstance(value, Logical) else value.values
    if values.ndim == 2 and values.shape[1] == 1:
        values = values.reshape(-1)
    return values


def preview(values: Any, limit: int = 5) -> str:
    """The first few of *values*, for a message: ``3, 7, 9, ...``."""
    items = [str(v) for v in list(np.atleast_1d(np.asarray(values, dtype=object)))[: limit + 1]]
    return ", ".join(items[:limit]) + (", ..." if len(items) > limit else "")


def plural(k: int, word: str) -> str:
    """``k`` and ``word``, plural unless ``k`` is 1: ``"1 row"``, ``"3 rows"``."""
    return f"{k} {word}{'s' if k != 1 else ''}"


def _check_finite(values: np.ndarray, what: str, rows: pd.Index,
                  names: list[str] | None = None) -> None:
    """Stop, as lme4 does, on infinite values; name the column and the data rows.

    Missing values never get here (the model frame drops them), so any
    non-finite value is an infinity.
    """
    bad = ~np.isfinite(values if values.ndim == 2 else values[:, None])  # (0, k) for no rows too
    if not bad.any():
        return
    column = int(np.argmax(bad.any(axis=0)))
    where = np.flatnonzero(bad[:, column])
    label = f"{what} '{names[column]}'" if names else what
    raise DataError(f"{label} has infinite values in {plural(len(where), 'row')} "
                    f"(index {preview(rows[where])}); remove those rows or transform "
                    "the variable (lme4 stops on them too)")


def check_response_varies(y: np.ndarray, X: np.ndarray, offset: np.ndarray | None,
                          label: str, r: np.ndarray | None = None) -> None:
    """Refuse a response the fixed effects fit exactly (a constant one, say).

    Its residual variance is zero, so the deviance is -inf: lme4 returns
    arbitrary estimates with convergence warnings.  ``r``: the R factor of
    ``[X, y − offset]``, where the caller has it (``build_design``).
    """
    if r is None:
        r = tall_r_factor(np.column_stack([X, y if offset is None else y - offset]))
    # The last diagonal entry of R is the norm of the target's residual on X, and
    # its last column's norm the target's own; where [X target] has more columns
    # than rows, that residual is zero.
    residual = abs(r[-1, -1]) if r.shape[0] == r.shape[1] else 0.0
    if residual > _EXACT_FIT_TOLERANCE * np.linalg.norm(r[:, -1]):
        return
    if np.all(y == y[0]):
        raise DataError(f"the response '{label}' is constant ({preview(y[:1])} in every row "
                        "used): there is no variation to model")
    raise DataError(f"the response '{label}' is an exact linear function of the fixed effects "
                    "(every residual is zero): no variance can be estimated")


_TSQR_ROWS = 8192  # rows per block of tall_r_factor


def tall_r_factor(X: np.ndarray) -> np.ndarray:
    """R of X = QR (up to the signs of its rows) by QRs of row blocks, then of their stacked Rs.

    Householder QR of a tall matrix runs at memory speed; blocks that stay in
    cache take half the time (100 000 × 101: 290 → 130 ms), with the same
    stability.

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(20_000, 3))
    >>> bool(np.allclose(np.abs(tall_r_factor(X)), np.abs(np.linalg.qr(X, mode="r"))))
    True
    """
    if X.shape[0] <= _TSQR_ROWS:
        return _r_factor(X)
    blocks = [_r_factor(X[i : i + _TSQR_ROWS]) for i in range(0, X.shape[0], _TSQR_ROWS)]
    return _r_factor(np.vstack(blocks))


def _r_factor(X: np.ndarray) -> np.ndarray:
    """``np.linalg.qr(X, mode="r")`` by LAPACK's dgeqrf itself: the same R, without numpy's
    35 µs of checks and copies around it (most of the time of a 180 × 3 QR).

    With the workspace LAPACK asks for, as numpy gives it: scipy's default is too
    small for the blocked algorithm, and past 32 columns the unblocked one ran at
    a quarter of the speed (8,192 × 402: 509 → 125 ms).
    """
    if X.size == 0:
        return np.zeros((min(X.shape), X.shape[1]))
    work, _ = lapack.dgeqrf_lwork(*X.shape)
    qr, _, _, info = lapack.dgeqrf(np.asarray(X, dtype=float), lwork=int(work))
    if info != 0:
        raise np.linalg.LinAlgError(f"dgeqrf failed (info = {info})")
    return np.triu(qr[: min(X.shape)])


def _pivoted_qr_rank(X: np.ndarray, tol: float, triangular: bool = False) -> tuple[int, np.ndarray]:
    """Rank and column pivot of R's ``qr(X, LAPACK = FALSE)`` (LINPACK dqrdc2).

    A column whose norm, after removing the earlier columns, falls below
    ``tol`` times its original norm is moved to the end; the others keep
    their order.  Without pivoting, that remaining norm is |R_jj| of an
    unpivoted QR: where every |R_jj| clears the threshold by a wide margin,
    dqrdc2 moves nothing, and LAPACK's blocked QR says so faster than the
    column-by-column port (``_dqrdc2``).  ``triangular``: X is already upper
    triangular (an R, as ``drop_rank_deficient``'s ``inner``), its own R.

    Examples
    --------
    >>> X = np.array([[1.0, 2.0, 1.0], [1.0, 2.0, 0.0], [1.0, 2.0, 3.0]])
    >>> _pivoted_qr_rank(X, 1e-7)  # R: qr(X, tol = 1e-7) has rank 2, pivot 1 3 2
    (2, array([0, 2, 1]))
    """
    n, p = X.shape
    if n >= p:
        r = np.abs(np.diagonal(X if triangular else tall_r_factor(X)))
        norms = np.linalg.norm(X, axis=0)
        if np.all(r >= _RANK_MARGIN * tol * np.where(norms == 0, 1.0, norms)):
            return p, np.arange(p)
    return _dqrdc2(X, tol)


def _dqrdc2(X: np.ndarray, tol: float) -> tuple[int, np.ndarray]:
    """``_pivoted_qr_rank`` by LINPACK dqrdc2's own steps, ported."""
    x = np.array(X, dtype=float, copy=True)
    n, p = x.shape
    qraux = np.linalg.norm(x, axis=0)
    work = qraux.copy()  # norms to downdate
    original = np.where(qraux == 0, 1.0, qraux)
    pivot = np.arange(p)
    limit = p  # columns at and after `limit` are negligible
    for col in range(min(n, p)):
        while col < limit and qraux[col] < original[col] * tol:
            order = np.r_[np.arange(col), np.arange(col + 1, p), col]
            x, pivot, qraux, work, original = (x[:, order], pivot[order], qraux[order],
                                              work[order], original[order])
            limit -= 1
        if col == n - 1:
            break
        norm = np.linalg.norm(x[col:, col])
        if norm == 0:
            continue
        norm = math.copysign(norm, x[col, col]) if x[col, col] != 0 else norm
        x[col:, col] /= norm
        x[col, col] += 1.0
        rest = slice(col + 1, p)
        step = -(x[col:, col] @ x[col:, rest]) / x[col, col]
        x[col:, rest] += np.outer(x[col:, col], step)
        for j in range(col + 1, p):
            if qraux[j] == 0:
                continue
            shrink = max(1.0 - (abs(x[col, j]) / qraux[j]) ** 2, 0.0)
            if abs(shrink) < 1e-6:  # recompute rather than downdate (R's 9/99 fix)
                qraux[j] = work[j] = np.linalg.norm(x[col + 1:, j])
            else:
                qraux[j] *= math.sqrt(shrink)
        qraux[col] = x[col, col]
        x[col, col] = -norm
    return min(limit, n), pivot


def drop_rank_deficient(X: np.ndarray, xnames: list[str], inner: np.ndarray | None = None
                        ) -> tuple[np.ndarray, list[str], list[str]]:
    """lme4's chkRank.drop.cols: keep the pivoted QR's first rank columns (warns if any is dropped).

    Returns X's columns kept, their names and the names dropped.  ``X`` may
    be any matrix with X's inner products, such as the R factor of its QR;
    ``inner``, R's leading columns where the caller has R (upper triangular,
    so that no QR of it is taken again), to decide on in X's place.
    """
    p = X.shape[1]
    if p == 0:
        return X, xnames, []
    rank, pivot = _pivoted_qr_rank(X if inner is None else inner, RANK_TOLERANCE, triangular=inner is not None)
    if rank == p:
        return X, xnames, []
    dropped = p - rank
    plural = "column / coefficient" if dropped == 1 else "columns / coefficients"
    warn(f"fixed-effect model matrix is rank deficient so dropping {dropped} "
                  f"{plural}",
         RankDeficiencyWarning)
    keep = pivot[:rank]
    return X[:, keep], [xnames[i] for i in keep], [xnames[i] for i in pivot[rank:]]


def _check_scale(X: np.ndarray, r: np.ndarray | None = None) -> bool:
    """lme4's checkScaleX: warn when predictor scales differ by over 1000 times; whether it warned.

    ``r``: as for ``_column_sds``.
    """
    continuous = ~np.all((X == 0) | (X == 1), axis=0)
    if continuous.sum() == 0 or X.shape[0] < 2:
        return False
    # Every column's SD, then the continuous ones: selecting columns first copies X.
    return warn_on_scales(_column_sds(X, r)[continuous])


def _column_sds(X: np.ndarray, r: np.ndarray | None = None) -> np.ndarray:
    """The SD of each column of X (n − 1 in the denominator).

    ``r``: R of a QR of X's columns (and of more after them) where X's first
    column is the intercept's ones.  RᵀR = XᵀX, so R's first row holds each
    column's sum over √n and the rest of the column its sum of squares about
    its mean: no pass over X (``std`` took a fifth of Chem97's design).

    Examples
    --------
    >>> X = np.column_stack([np.ones(4), [1.0, 2.0, 4.0, 7.0]])
    >>> r = tall_r_factor(X)
    >>> bool(np.allclose(_column_sds(X, r), X.std(axis=0, ddof=1)))
    True
    """
    if r is None:
        return X.std(axis=0, ddof=1)
    p = X.shape[1]
    return np.sqrt(np.einsum("ij,ij->j", r[1:, :p], r[1:, :p]) / (X.shape[0] - 1))


def warn_on_scales(sd: np.ndarray) -> bool:
    """checkScaleX's test on the standard deviations of X's continuous columns; whether it warned.

    It warns where a log SD, or the difference of two, exceeds log 1000 in
    size; the largest difference is the largest log SD less the smallest.
    On Python floats: X has a few columns, and numpy's calls on them took a
    tenth of a small model's design.

    Examples
    --------
    >>> warn_on_scales(np.array([0.5, 40.0]))
    False
    """
    logs = [math.log(s) if s > 0 else -math.inf for s in np.asarray(sd, float).tolist() if s == s]  # NaN: no test
    limit = math.log(_SCALE_TOLERANCE)
    if logs and (max(map(abs, logs)) > limit or max(logs) - min(logs) > limit):
        warn(SCALE_MESSAGE, ScaleWarning)
        return True
    return False


def _random_term(parsed: ParsedFormula, index: int, frame: ModelFrame, evaluator: Evaluator,
                 levels: Mapping[str, Sequence[str]] | None = None) -> RandomEffectsTerm:
    bar = parsed.bars[index]
    z, cnames, _, _ = model_matrix(parsed.bar_terms(bar), frame.values, frame.nrows)
    if z.shape[1] == 0:
        raise FormulaError(caret_message(parsed.text, max(bar.lhs.start, 0), bar.lhs.end,
                                         f"the random-effects term ({bar.label}) has no "
                                         "columns"))
    try:
        factor = grouping_factor(bar.group, frame, evaluator)
    except ValueError as error:
        raise DataError(caret_message(parsed.text, max(bar.group.start, 0), bar.group.end,
                                      f"bad grouping factor '{bar.group_label}': {error}")
                        ) from None
    if levels is not None:
        factor = _on_levels(factor, levels[bar.group_label], bar.group_label)
    return RandomEffectsTerm(bar.group_label, cnames, z, factor.codes.astype(np.intp),
                             factor.levels, bar.correlated, bar.label)


def _on_levels(factor: RFactor, levels: Sequence[str], group: str) -> RFactor:
    """A partition's grouping factor coded on the levels of the whole data set."""
    recoded = factor.with_levels(list(levels))
    unknown = sorted(set(factor.labels()[recoded.missing() & ~factor.missing()]))
    if unknown:
        raise DataError(f"grouping factor '{group}' has level(s) {', '.join(unknown[:10])} "
                        "that are not among the levels given")
    return recoded


def _lme4_order(terms: list[RandomEffectsTerm]) -> list[RandomEffectsTerm]:
    """mkReTrms: if the numbers of levels ever increase, sort them decreasing.

    lme4 uses ``rev(order(nl))``, so terms with tied numbers of levels end
    up in reverse order.
    """
    nlevels = [t.nlevels for t in terms]
    if not any(b > a for a, b in zip(nlevels, nlevels[1:])):
        return terms
    increasing = sorted(range(len(terms)), key=lambda i: nlevels[i])  # stable, as order()
    return [terms[i] for i in reversed(increasing)]


def check_levels(terms: list[RandomEffectsTerm], n: int, allow_n: bool = False) -> None:
    """lme4's checkNlevels and checkZdims, at lmerControl's defaults (stop).

    ``allow_n`` (glmer's ``allow.n``): a GLMM may have as many levels, and
    random effects, as observations (an observation-level random effect).
    """
    nlevels = {t.group: t.nlevels for t in terms}
    if any(k < 2 for k in nlevels.values()):
        raise ModelSpecError("grouping factors must have > 1 sampled level (problems: "
                             + ", ".join(g for g, k in nlevels.items() if k < 2) + ")")
    too_many = [g for g, k in nlevels.items() if (k > n if allow_n else k >= n)]
    if too_many:
        raise ModelSpecError(f"number of levels of each grouping factor must be {'<=' if allow_n else '<'} "
                             f"number of observations (problems: {', '.join(too_many)})")
    for term in terms:
        q = term.nlevels * term.size
        if (n < q) if allow_n else (n <= q):
            raise ModelSpecError(
                f"number of observations (={n}) <= number of random effects (={q}) for term "
                f"({term.label}); the random-effects parameters and the residual variance "
                "(or scale parameter) are probably unidentifiable")


def model_variables(parsed: ParsedFormula) -> list:
    """Every variable of the formula, as in lme4's model frame (``subbars``)."""
    variables = list(parsed.fixed_terms.variables)
    for bar in parsed.bars:
        variables.extend(parsed.bar_terms(bar).variables)
        variables.extend(grouping_variables(bar.group))
    return variables


def _offset(parsed: ParsedFormula, frame: ModelFrame, key: str | None) -> np.ndarray | None:
    """The sum of the formula's offset() terms and the offset argument."""
    fixed = parsed.fixed_terms
    parts = [frame[fixed.variables[i]].values.reshape(-1) for i in fixed.offsets]
    if key is not None:
        parts.append(frame.extras[key])
    return np.sum(parts, axis=0) if parts else None


def build_design(formula: str, data: Any, *, weights: Any = None, offset: Any = None,
                 na_action: str = "omit",
                 levels: Mapping[str, Sequence[str]] | None = None,
                 family: Family | None = None) -> Design:
    """Turn an lme4 formula and a data frame into a ``Design``, as ``lFormula``.

    Parameters
    ----------
    formula : str
        An lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data : pandas.DataFrame, dict of arrays, or a table with ``to_pandas()``
        The data (never modified); polars and pyarrow tables are converted.
    weights : str or array_like, optional
        Prior weights: a column name or one value per row; non-negative.
        Rows of zero weight are left out (they carry no information; lme4
        keeps them and its deviance becomes infinite).
    offset : str or array_like, optional
        An offset: a column name or one value per row; added to any
        ``offset()`` terms of the formula.
    na_action : {"omit", "raise"}
        Drop rows with a missing value in any variable of the model, or
        raise a ``DataError`` naming them.
    levels : mapping of str to list of str, optional
        For *data* that are one partition of a larger data set (see
        ``mixedfit.distributed``): every grouping factor's levels in the
        whole data set, by its label (``"Subject"``, ``"cask:batch"``).  Each
        grouping factor is coded on them; no unused level is dropped
        (categorical columns keep all their categories), the partition may
        have no complete row, and the checks that need all the rows (numbers
        of levels, rank of X, a varying response, scales) are left to the
        caller.
    family : Family, optional
        For a GLMM: the response is taken as the family's ``initialize``
        takes it (``cbind(s, f)``, a two-level factor, a proportion with
        trials as weights; ``initialize``) and
        need not vary with the fixed effects, only not be constant.

    Returns
    -------
    Design

    Raises
    ------
    FormulaError
        For a malformed formula (with a caret under the problem).
    DataError
        For an unknown column, a bad value (infinite, text where numbers are
        needed, a response the fixed effects fit exactly), missing values
        with ``na_action="raise"``, or no row left to fit.
    ModelSpecError
        When lme4 would stop: too few or too many levels, or more random
        effects than observations; an unknown *na_action*.

    Warns
    -----
    MixedFitWarning
        When rows of zero weight are left out.
    RankDeficiencyWarning
        When columns of X are dropped.
    ScaleWarning
        When predictors are on very different scales.

    Examples
    --------
    >>> import mixedfit as mf
    >>> d = build_design("strength ~ 1 + (1 | batch/cask)", mf.load_dataset("Pastes"))
    >>> [(t.group, t.nlevels) for t in d.terms]
    [('cask:batch', 30), ('batch', 10)]
    """
    frame_data = as_dataframe(data)
    parsed = parse_formula(formula)
    if not parsed.bars:
        raise FormulaError(caret_message(formula, 0, len(formula),
                                         "no random effects terms specified in formula"))
    evaluator = Evaluator(frame_data, formula)
    frame, weight_key, offset_key = build_model_frame(parsed, evaluator, weights, offset, na_action,
                                                      fixed_levels=levels is not None)
    n = frame.nrows
    prior = None if weight_key is None else frame.extras[weight_key]
    if family is None:
        y, trials, glm_weights = _response(parsed, frame), None, prior
    else:
        y, trials, glm_weights = family.initialize(_glm_response(parsed, frame, family),
                                                   prior, parsed.response_label)
    terms = _lme4_order([_random_term(parsed, i, frame, evaluator, levels)
                         for i in range(len(parsed.bars))])
    if levels is None:  # a partition's checks are made on the whole data set
        check_levels(terms, n, allow_n=family is not None)
    X, xnames, assign, suffixes = model_matrix(parsed.fixed_terms, frame.values, n)
    factors = _factors(parsed, frame)
    column_terms, column_suffixes = dict(zip(xnames, assign)), dict(zip(xnames, suffixes))
    offset_values = _offset(parsed, frame, offset_key)
    # the index itself where every row is kept: selecting it is 0.1-0.2 ms of a small fit's first pandas work
    rows = frame_data.index if frame.n_dropped == 0 else frame_data.index[frame.keep]
    _check_values(parsed.response_label, y, X, xnames, offset_values, terms, rows)
    dropped: list[str] = []
    badly_scaled = False
    dropped_coef = None
    if levels is None:
        X_full, full_names = X, xnames
        # One QR of [X, y − offset] for X's rank, the response's residual and X's scales.
        r = tall_r_factor(np.column_stack([X, y if offset_values is None else y - offset_values]))
        X, xnames, dropped = drop_rank_deficient(X, xnames, inner=r[:, : X.shape[1]])
        if dropped:
            X_dropped = X_full[:, [full_names.index(c) for c in dropped]]
            dropped_coef = np.linalg.lstsq(X, X_dropped, rcond=None)[0]
            r = None  # R of X's columns before some were dropped
        if family is None:
            check_response_varies(y, X, offset_values, parsed.response_label, r)
        elif np.all(y == y[0]):  # lme4's check.response.not.const
            raise DataError(f"the response '{parsed.response_label}' is constant "
                            f"({preview(y[:1])} in every row used): lme4: Response is constant")
        # With an intercept, X's first column is its ones (the R-based SDs need them there).
        badly_scaled = _check_scale(X, r if parsed.fixed_terms.intercept else None)
    design = Design(y=y, X=X, xnames=xnames, terms=terms, response=parsed.response_label,
                    formula=lme4_deparse(formula), formula_written=deparse_formula(formula),
                    rows=rows, weights=glm_weights,
                    offset=offset_values, dropped_xnames=dropped, n_dropped=frame.n_dropped,
                    xlevels=_xlevels(factors), contrasts=_contrasts(factors), badly_scaled=badly_scaled, dropped_coef=dropped_coef,
                    covariate_means=_covariate_means(parsed, evaluator, frame.keep), trials=trials,
                    parsed=parsed, assign=column_terms, suffixes=column_suffixes,
                    transforms=evaluator.state)
    design.xy_r = r if levels is None else None  # r is None where columns were dropped
    return design


def build_model_frame(parsed: ParsedFormula, evaluator: Evaluator, weights: Any, offset: Any,
                      na_action: str, fixed_levels: bool = False
                      ) -> tuple[ModelFrame, str | None, str | None]:
    """The model frame, and the keys of the weights and the offset among its extras.

    Rows of zero weight are left out with the incomplete ones (with a warning).
    ``fixed_levels``: the factors' levels are fixed elsewhere (a partition of
    Dask data): unused levels are kept, and no complete row is no error.
    """
    weight_key, weight_values = _extra_column(weights, "weights", evaluator) \
        if weights is not None else (None, None)
    offset_key, offset_arg = _extra_column(offset, "offset", evaluator) \
        if offset is not None else (None, None)
    extras = {key: values for key, values in ((weight_key, weight_values),
                                              (offset_key, offset_arg)) if key is not None}
    zero = None if weight_key is None else _zero_weight_rows(weight_values, weight_key,
                                                             evaluator.data.index)
    frame = model_frame(evaluator, model_variables(parsed), extras, na_action,
                        exclude=zero, exclude_reason="a zero weight", fixed_levels=fixed_levels)
    if zero is not None and zero.any():
        warn(f"{plural(int(zero.sum()), 'row')} of zero weight left out of the fit: "
                      "they carry no information (lme4 keeps them and reports an infinite "
                      "deviance)",
             MixedFitWarning)
    return frame, weight_key, offset_key


def _zero_weight_rows(values: np.ndarray, name: str, index: pd.Index) -> np.ndarray:
    """Check prior weights as lme4 does (none negative) and find the zero ones.

    lme4 accepts a zero weight but its deviance is then infinite (Σ log w),
    and its estimates arbitrary.  A weight tending to zero makes its
    observation's likelihood term constant in the parameters, so the fit is
    that of the other rows: zero-weight rows are left out.  Missing weights
    are left to the model frame.
    """
    label = "the weights argument" if name == "weights" else f"column '{name}'"
    present = ~np.isnan(values)
    _check_finite(values[present], label, index[present])
    negative = np.flatnonzero(present & (values < 0))
    if negative.size:
        raise DataError(f"{plural(negative.size, 'negative weight')} in {label} (index "
                        f"{preview(index[negative])}); weights must be >= 0 (lme4: "
                        "all(weights >= 0) is not TRUE)")
    return values == 0


def _check_values(response: str, y: np.ndarray, X: np.ndarray, xnames: list[str],
                  offset: np.ndarray | None, terms: list[RandomEffectsTerm],
                  rows: pd.Index) -> None:
    """Stop on an infinite value in anything the engine reads, naming where it is."""
    _check_finite(y, "the response", rows, [response])
    _check_finite(X, "the fixed-effects column", rows, xnames)
    if offset is not None:
        _check_finite(offset, "the offset", rows)
    for term in terms:
        _check_finite(term.z, f"the random-effects term ({term.label}) column", rows,
                      term.cnames)


def _covariate_means(parsed: ParsedFormula, evaluator: Evaluator,
                     keep: np.ndarray) -> dict[str, float]:
    """The mean over the fitted rows of each numeric column the fixed variables read."""
    fixed = parsed.fixed_terms
    columns: list[str] = []
    for variable in fixed.variables[1 if fixed.has_response else 0:]:
        evaluator.translate(variable, {}, columns)
    out: dict[str, float] = {}
    for name in dict.fromkeys(columns):
        value = evaluator.column(name)
        if isinstance(value, np.ndarray) and value.dtype.kind in "if":
            out[name] = float(np.mean(value[keep]))
    return out


def _factors(parsed: ParsedFormula, frame: ModelFrame) -> dict[str, RFactor]:
    """Each factor variable of the fixed part and of the bar terms' left-hand sides (not the response)."""
    sources = [parsed.fixed_terms] + [parsed.bar_terms(bar) for bar in parsed.bars]
    out: dict[str, RFactor] = {}
    for mterms in sources:
        for variable in mterms.variables[1 if mterms.has_response else 0:]:
            value = frame[variable]
            if isinstance(value, RFactor):
                out.setdefault(deparse(variable), value)
    return out


def _xlevels(factors: Mapping[str, RFactor]) -> dict[str, list[str]]:
    """R's ``.getXlevels``: the levels of each factor variable."""
    return {label: list(value.levels) for label, value in factors.items()}


def _contrasts(factors: Mapping[str, RFactor]) -> dict[str, ContrastMatrix]:
    """R's ``attr(X, "contrasts")``: each factor's contrasts, on its levels."""
    return {label: (value.contrasts or default_contrasts(value.ordered))(value.levels)
            for label, value in factors.items()}

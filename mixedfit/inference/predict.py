"""Predictions, simulated responses and refits: lme4's ``predict``, ``simulate``, ``refit``.

``predict`` follows ``predict.merMod``:

* ``re_form=None`` adds every random-effects term, ``re_form="~0"`` (or
  ``"NA"``, ``numpy.nan``) none, and a formula such as ``"~(1|plate)"`` only
  the terms it names; the random-effects values are the conditional modes
  (``ranef``), picked by grouping factor and column name as lme4 does;
* new data are evaluated with the fitted formula: transformations
  (``log(x)``, ``I(x^2)``) are applied to the new rows, those that depend on
  the data (``poly``, ``scale``, ``ns``, ``bs``) with what they found on the
  data fitted (R's ``predvars``: ``poly``'s coefficients, ``scale``'s centre
  and scale, the knots); factors are coded with the levels of the fit
  (``xlevels``); offsets from ``offset()`` terms are added;
* a level of a grouping factor that the fit has not seen is an error, or,
  with ``allow_new_levels=True``, gets zero random effects (the population
  prediction); missing values give NaN predictions (R's ``na.pass``).

Examples
--------
>>> import pandas as pd
>>> import mixedfit as mf
>>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
>>> new = pd.DataFrame({"Days": [0.0, 9.0], "Subject": ["308", "999"]})
>>> predict(fit, new, allow_new_levels=True).round(2).tolist()
[253.66, 345.61]
>>> predict(fit, new, re_form="~0").round(2).tolist()
[251.41, 345.61]
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, ModelSpecError, require_bool
from ..formula.bars import split_bars
from ..formula.deparse import deparse
from ..formula.evaluate import Evaluator, Logical
from ..formula.frame import ModelFrame
from ..formula.grouping import grouping_factor, grouping_variables
from ..formula.model_matrix import model_matrix
from ..formula.parse import parse_formula_tree
from ..formula.rterms import model_terms, term_variables
from ..formula.rvalues import RFactor
from ..model import MixedModel
from ..terms import by_row_label, check_response_varies, frame_of_columns, from_table, preview

__all__ = ["predict", "simulate", "refit", "random_generator", "fixed_matrix"]

_MAX_LEVELS_TEXT = 60  # lme4's levelfun truncates the list of new levels here


# -- which random-effects terms ----------------------------------------------


def _fixed_only(re_form: Any) -> bool:
    """lme4's ``re.form = NA`` (a formula without bars, ``~0``, is handled by the parser)."""
    if isinstance(re_form, str):
        return re_form.strip() == "NA"
    try:
        return bool(pd.isna(re_form))
    except (TypeError, ValueError):
        return False


def _selected_bars(fit, re_form: Any) -> list:
    """The bar terms whose random effects enter the prediction.

    As lme4's ``isRE``: ``None`` means the model's own terms; NA or a formula
    without bar terms (``~0``) means none.
    """
    if re_form is None:
        return list(fit.model.design.parsed.bars)
    if _fixed_only(re_form):
        return []
    if not isinstance(re_form, str):
        raise ModelSpecError(f"re_form must be None, '~0', NA or a formula string, not {re_form!r}")
    text = re_form if re_form.lstrip().startswith("~") else "~" + re_form
    _, rhs = parse_formula_tree(text)
    _, bars = split_bars(rhs, text)
    groups = {t.group for t in fit.model.design.terms}
    unknown = [b.group_label for b in bars if b.group_label not in groups]
    if unknown:
        raise ModelSpecError("grouping factors specified in re_form that were not present in the "
                             f"original model: {', '.join(unknown)}")
    return list(bars)


# -- predictions on the fitted rows ---------------------------------------------


def _design_term_for(fit, bar) -> tuple[int, list[int]]:
    """The fitted term (index) and its columns that a bar of re_form denotes."""
    terms = fit.model.design.terms
    for k, term in enumerate(terms):
        if term.label and term.label == bar.label:
            return k, list(range(term.size))

    lhs = model_terms(None, bar.lhs)
    if not lhs.terms and lhs.intercept:  # (1 | g): the intercept column of a g term
        for k, term in enumerate(terms):
            if term.group == bar.group_label and "(Intercept)" in term.cnames:
                return k, [term.cnames.index("(Intercept)")]
    raise ModelSpecError(f"re_form term ({bar.label}) is not a term of the model; without newdata "
                         "re_form may name only the model's own terms")


def _predict_fitted_rows(fit, bars: list) -> np.ndarray:
    design = fit.model.design
    eta = design.X @ np.asarray(fit.fixef, float)
    if design.offset is not None:
        eta = eta + design.offset
    for bar in bars:
        k, cols = _design_term_for(fit, bar)
        term, b = design.terms[k], fit._b[k]
        eta = eta + np.einsum("ns,ns->n", term.z[:, cols], b[term.codes][:, cols])
    return eta


# -- evaluating the formula on new data -------------------------------------------


def _as_frame(newdata: Any) -> pd.DataFrame:
    """newdata as a DataFrame, as ``mixed`` takes data (polars and pyarrow tables too);
    in a dict, single values fill their column and make one row on their own."""
    newdata = from_table(newdata)
    if isinstance(newdata, pd.DataFrame):
        return newdata
    if isinstance(newdata, Mapping):
        return frame_of_columns(newdata, "newdata", broadcast=True)
    raise DataError("newdata must be a pandas DataFrame, a dict of arrays or a table with "
                    f"to_pandas() (polars, pyarrow), not {type(newdata).__name__}")


def _training_levels(fit, label: str) -> list[str]:
    """The levels a factor had in the fit (R's ``xlev``), for coding new rows."""
    levels = fit.model.design.xlevels.get(label)
    if levels is None:
        raise DataError(f"'{label}' holds numbers in the data fitted but categories in newdata; "
                        "give it as numbers")
    return list(levels)


def _evaluate(fit, evaluator, nodes: list) -> tuple[dict, np.ndarray]:
    """Evaluate variables on new rows, factors re-coded on the fit's levels.

    Returns the frame and a mask of rows with a missing value.
    """
    frame: dict = {}
    missing = np.zeros(len(evaluator.data), dtype=bool)
    for node in dict.fromkeys(nodes):
        value = evaluator.evaluate(node)
        if isinstance(value, RFactor):
            label = deparse(node)
            levels = _training_levels(fit, label)
            recoded = value.with_levels(levels)
            unseen = sorted({str(v) for v in value.labels()[recoded.missing() & ~value.missing()]})
            if unseen:
                raise DataError(f"factor '{label}' has new level(s) {', '.join(unseen)}; "
                                f"the fit knows {', '.join(levels)}")
            missing |= recoded.missing()
            # coded with the fit's contrasts (R's contrasts.arg), whether or not
            # the new column is, say, ordered as the fitted one was
            coding = fit.model.design.contrasts[label]
            value = RFactor(np.where(recoded.codes < 0, 0, recoded.codes), levels,
                            value.ordered, lambda _levels, coding=coding: coding)
        elif isinstance(value, Logical):
            missing |= value.na
        frame[node] = value
    return frame, missing


def _new_rows(fit, newdata: Any):
    """newdata as a DataFrame, and an evaluator of the fitted formula on it.

    The evaluator transforms as the fit did: it starts from a copy of the
    fit's transform state (``design.transforms``).
    """
    design = fit.model.design
    data = _as_frame(newdata)
    return data, Evaluator(data, design.formula, copy.deepcopy(design.transforms))


def _fixed_columns(fit, evaluator, n: int,
                   columns: list[str]) -> tuple[np.ndarray, dict, list, np.ndarray]:
    """The fixed-effects *columns* on new rows, the frame, its offset variables, the missing rows."""
    fixed = fit.model.design.parsed.fixed_terms
    used = [fixed.variables[i] for t in fixed.terms for i in term_variables(t)]
    offsets = [fixed.variables[i] for i in fixed.offsets]
    frame, missing = _evaluate(fit, evaluator, used + offsets)
    X, names, _, _ = model_matrix(fixed, frame, n)
    absent = [c for c in columns if c not in names]
    if absent:
        raise DataError(f"new data give no column {', '.join(absent)} of the fixed effects "
                        f"(columns made: {', '.join(names)}); code the factors as in the fit")
    return X[:, [names.index(c) for c in columns]], frame, offsets, missing


def _fixed_part(fit, evaluator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Xβ + offset on new rows (formula offsets only, as lme4) and the missing-row mask."""
    X, frame, offsets, missing = _fixed_columns(fit, evaluator, n, list(fit.xnames))
    eta = X @ np.asarray(fit.fixef, float)
    for node in offsets:
        eta = eta + frame[node].values.reshape(-1)
    return eta, missing


def fixed_matrix(fit, newdata: Any, columns: list[str] | None = None) -> np.ndarray:
    """The fixed-effects model matrix of new rows, coded as in the fit.

    Parameters
    ----------
    fit : MixedResults
    newdata : pandas.DataFrame, dict of arrays, or a table with ``to_pandas()``
    columns : list of str, optional
        Which columns, in this order (default ``fit.xnames``); may name
        columns dropped for rank deficiency (``design.dropped_xnames``).

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("angle ~ recipe + (1|replicate)", mf.load_dataset("cake"))
    >>> fixed_matrix(fit, {"recipe": ["A", "C"]}).tolist()
    [[1.0, 0.0, 0.0], [1.0, 0.0, 1.0]]
    """
    data, evaluator = _new_rows(fit, newdata)
    X, _, _, _ = _fixed_columns(fit, evaluator, len(data),
                                list(fit.xnames) if columns is None else list(columns))
    return X


def _new_levels_error(group: str, levels: list[str]) -> DataError:
    text = ", ".join(levels)
    if len(text) > _MAX_LEVELS_TEXT:  # as lme4's levelfun
        text = text[:_MAX_LEVELS_TEXT]
        text = text[: text.rfind(",")] + ", ..."
    return DataError(f"new levels detected in newdata for grouping factor '{group}': {text} "
                     "(use allow_new_levels=True to predict them with zero random effects)")


def _random_part(fit, bar, evaluator, n: int, allow_new_levels: bool) -> tuple[np.ndarray, np.ndarray]:
    """Z b for one bar term on new rows, and the rows with a missing covariate."""
    lhs = model_terms(None, bar.lhs)
    used = [lhs.variables[i] for t in lhs.terms for i in term_variables(t)]
    frame, missing = _evaluate(fit, evaluator, used)
    z, cnames, _, _ = model_matrix(lhs, frame, n)
    ranef = fit.ranef()[bar.group_label]
    absent = [c for c in cnames if c not in ranef.columns]
    if absent:
        raise ModelSpecError("random effects specified in re_form that were not present in the "
                             f"original model: {', '.join(absent)}")
    group_vars = grouping_variables(bar.group)
    values = {node: evaluator.evaluate(node) for node in dict.fromkeys(group_vars)}
    factor = grouping_factor(bar.group, ModelFrame(values, np.ones(n, dtype=bool)), evaluator)
    position = {label: i for i, label in enumerate(map(str, ranef.index))}
    labels = factor.labels()
    rows = np.array([position.get(lab, -1) if lab is not None else -1 for lab in labels], dtype=np.intp)
    if not allow_new_levels:
        if factor.missing().any():
            raise DataError("NAs are not allowed in prediction data for grouping variables "
                            f"('{bar.group_label}') unless allow_new_levels is True")
        new = [lev for lev in factor.levels if lev not in position]
        if new:
            raise _new_levels_error(bar.group_label, new)
    B = ranef[cnames].to_numpy()
    known = rows >= 0
    out = np.zeros(n)
    out[known] = np.einsum("ns,ns->n", z[known], B[rows[known]])
    return out, missing


def predict(fit, newdata: Any = None, re_form: Any = None, allow_new_levels: bool = False) -> pd.Series:
    """Predictions from a fit, as lme4's ``predict(fit, newdata, re.form, allow.new.levels)``.

    Parameters
    ----------
    fit : MixedResults
    newdata : pandas.DataFrame, dict of arrays, or a table with ``to_pandas()``, optional
        Rows to predict (default: the rows fitted): what ``mixed`` takes as
        data (polars and pyarrow tables too).  Needs the formula's
        covariates and the grouping factors of the terms used, not the response.
        In a dict, single values fill their column as in pandas, and a dict of
        single values (``{"Days": 2, "Subject": "308"}``) is one row.
    re_form : None, str or NA
        ``None``: all random effects; ``"~0"``, ``"NA"`` or ``numpy.nan``:
        none (the population prediction Xβ); a formula such as
        ``"~(1|plate)"``: only those terms.
    allow_new_levels : bool
        Predict levels of a grouping factor (and missing ones) that the fit has
        not seen with zero random effects, instead of raising.

    Returns
    -------
    pandas.Series
        Indexed like ``newdata`` (or the rows fitted).

    Raises
    ------
    DataError
        New levels of a grouping factor (naming the factor and the levels)
        without ``allow_new_levels``; a new level of a fixed-effects factor;
        categories where the fit had numbers.
    ModelSpecError
        A ``re_form`` term the model does not have; an ``allow_new_levels``
        that is not True or False.

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("diameter ~ 1 + (1|plate) + (1|sample)", mf.load_dataset("Penicillin"))
    >>> predict(fit, {"plate": ["a"], "sample": ["A"]}, re_form="~(1|plate)").round(3).tolist()
    [23.777]
    """
    allow_new_levels = require_bool(allow_new_levels, "allow_new_levels")
    bars = _selected_bars(fit, re_form)
    if newdata is None:
        eta = _predict_fitted_rows(fit, bars)
        return pd.Series(eta, index=fit.model.design.rows)
    data, evaluator = _new_rows(fit, newdata)
    n = len(data)
    eta, missing = _fixed_part(fit, evaluator, n)
    for bar in bars:
        part, miss = _random_part(fit, bar, evaluator, n, allow_new_levels)
        eta, missing = eta + part, missing | miss
    eta[missing] = np.nan
    return pd.Series(eta, index=data.index)


# -- simulate and refit -------------------------------------------------------


def random_generator(seed: Any) -> np.random.Generator:
    """numpy's generator for *seed*: None, a non-negative integer or a Generator.

    Examples
    --------
    >>> random_generator(-1)
    Traceback (most recent call last):
    ...
    mixedfit.errors.ModelSpecError: seed must be None, a non-negative integer or a numpy.random.Generator, not -1
    """
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError):
        raise ModelSpecError("seed must be None, a non-negative integer or a "
                             f"numpy.random.Generator, not {seed!r}") from None


def simulate(fit, nsim: int = 1, seed: int | np.random.Generator | None = None,
             use_u: bool = False) -> pd.DataFrame:
    """Responses simulated from the fitted model, as lme4's ``simulate(fit, nsim, seed, use.u)``.

    Each column is ``Xβ̂ + offset + Zb + ε`` with ``b = Λ(θ̂) u``,
    ``u ~ N(0, σ̂² I)`` (so ``b ~ N(0, Σ̂)``) drawn afresh for every
    simulation, and ``ε ~ N(0, σ̂²/w)``.  With ``use_u=True`` the random
    effects are held at their conditional modes: ``fitted + ε``.

    Parameters
    ----------
    fit : MixedResults
    nsim : int
        Number of simulated responses.
    seed : int or numpy.random.Generator, optional
        Seed of numpy's generator (R's random numbers cannot be reproduced).
    use_u : bool
        Condition on the estimated random effects.

    Returns
    -------
    pandas.DataFrame
        Columns ``sim_1 … sim_nsim`` indexed like the rows fitted;
        ``attrs["seed"]`` holds ``seed``.

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
    >>> sims = simulate(fit, nsim=3, seed=1)
    >>> sims.shape, list(sims.columns)
    ((180, 3), ['sim_1', 'sim_2', 'sim_3'])
    """
    if int(nsim) < 1:
        raise ModelSpecError(f"nsim must be a positive integer, not {nsim!r}")
    use_u = require_bool(use_u, "use_u")
    rng = random_generator(seed)
    design = fit.model.design
    scale = fit.sigma if design.weights is None else fit.sigma / np.sqrt(design.weights)
    columns = {}
    for j, eta in enumerate(simulated_linear_predictors(fit, nsim, rng, use_u, fit.fittedvalues.to_numpy())):
        columns[f"sim_{j + 1}"] = eta + scale * rng.standard_normal(design.nobs)
    out = pd.DataFrame(columns, index=design.rows)
    out.attrs["seed"] = seed
    return out


def simulated_linear_predictors(fit, nsim: int, rng: np.random.Generator, use_u: bool, fitted: np.ndarray):
    """Per simulation, the linear predictor ``Xβ̂ + offset + Zb`` with fresh ``b = Λ(θ̂)u``, ``u ~ N(0, σ̂²I)``.

    With ``use_u`` the conditional one, ``fitted``, every time.  A generator:
    the caller draws each simulation's noise before the next one's effects
    (the linear model's ε; a GLMM's responses).
    """
    if isinstance(nsim, bool) or not isinstance(nsim, (int, np.integer)) or nsim < 1:
        raise ModelSpecError(f"nsim must be a positive integer, not {nsim!r}")
    design, model = fit.model.design, fit.model
    mean = design.X @ np.asarray(fit.fixef, float)
    if design.offset is not None:
        mean = mean + design.offset
    theta = np.asarray(fit.theta, float)
    templates = model.layout.templates(theta)
    for _ in range(int(nsim)):
        if use_u:
            yield fitted.copy()
            continue
        eta = mean.copy()
        for term, T in zip(design.terms, templates):
            b = fit.sigma * rng.standard_normal((term.nlevels, term.size)) @ T.T
            eta += np.einsum("ns,ns->n", term.z, b[term.codes])
        yield eta


def new_response(design, new_y: Any) -> np.ndarray:
    """A new response for ``refit``: finite numbers, one per row fitted, in the rows' order.

    A one-column DataFrame is read as its column; a Series is matched to
    the rows by its index.  Raises ``DataError`` otherwise.
    """
    if isinstance(new_y, pd.DataFrame):
        if new_y.shape[1] != 1:
            raise DataError(f"new_y has {new_y.shape[1]} columns; refit takes one response")
        new_y = new_y.iloc[:, 0]
    new_y = by_row_label(new_y, design.rows, "new_y", "the fit")
    try:
        y = np.asarray(new_y, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"new_y must be numbers, one per row fitted; got a {type(new_y).__name__} "
                        f"holding {preview(new_y)}") from None
    if y.shape[0] != design.nobs:
        raise DataError(f"new_y has {y.shape[0]} values; the fit has {design.nobs} observations")
    if not np.all(np.isfinite(y)):
        raise DataError(f"new_y has {int(np.sum(~np.isfinite(y)))} missing or infinite values")
    return y


def refit(fit, new_y: Any):
    """Fit the same model to a new response, as lme4's ``refit(fit, newresp)``.

    The design (X, Z, weights, offset) is reused and the optimizer starts from
    the fit's θ, as lme4 does.

    Parameters
    ----------
    fit : MixedResults
    new_y : array_like, pandas.Series or one-column DataFrame
        One value per row fitted (e.g. a column of ``simulate``).  A
        Series is matched to the rows fitted by its index (another order is
        reordered, other labels are refused).

    Returns
    -------
    MixedResults

    Raises
    ------
    DataError
        Values that are not numbers, missing or infinite, of the wrong
        length, a Series indexed by other labels, or a response the fixed
        effects fit exactly (a constant one), which ``mixed`` refuses too.

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
    >>> again = refit(fit, fit.model.design.y * 2)
    >>> round(float(again.fixef["Days"] / fit.fixef["Days"]), 6)
    2.0
    """
    design = fit.model.design
    y = new_response(design, new_y)
    # as mixed(): a response the fixed effects fit exactly has no variance to estimate
    check_response_varies(y, design.X, design.offset, "new_y")
    model = MixedModel(dataclasses.replace(design, y=y), reml=fit.reml)
    return model.fit(result=type(fit), start=np.asarray(fit.theta, float), data_name=fit.data_name,
                     weights_name=fit.weights_name, offset_name=fit.offset_name)

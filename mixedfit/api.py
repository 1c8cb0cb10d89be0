"""``mixed()``: fit an lme4 formula, dispatching to the fit that suits the model and data.

The linear model on in-memory data (``mixedfit.model``, giving
``mixedfit.results.MixedResults``), a GLMM (``mixedfit.glmm_results.glmer``),
the method of moments (``mixedfit.moments``) or Dask data
(``mixedfit.distributed``).  It is the top of the package: nothing in it
imports this module.
"""

from __future__ import annotations

import numpy as np

from .dask_glmm import mixed_dask_glmm
from .distributed import mixed_dask
from .errors import ModelSpecError
from .family import is_linear_model
from .glmm_results import glmer
from .model import MixedModel, setup_threads
from .moments import dispatch
from .results import MixedResults
from .terms import build_design
from .update import Call

__all__ = ["mixed"]


def mixed(
    formula: str,
    data,
    *,
    reml: bool = True,
    weights=None,
    offset=None,
    na_action: str = "omit",
    data_name: str | None = None,
    start=None,
    maxeval: int = 100_000,
    family=None,
    nagq: int = 1,
    method: str | None = None,
):
    """Fit a linear mixed-effects model written as an lme4 formula (lme4's ``lmer``), or with
    ``family=`` a generalized one (lme4's ``glmer``).

    Parameters
    ----------
    formula : str
        An lme4 formula, e.g. ``"Reaction ~ Days + (Days|Subject)"``.
    data : pandas.DataFrame, dict of arrays or dask.dataframe.DataFrame
        The data; it is never modified.  A Dask DataFrame is fitted partition
        by partition, with the same results (``mixedfit.distributed.mixed_dask``).
    reml : bool, default True
        REML (lme4's default) or maximum likelihood (``reml=False``).
    weights : str or array_like, optional
        Prior weights: a column name or one value per row.
    offset : str or array_like, optional
        An offset added to the linear predictor, besides any ``offset()`` term.
    na_action : {"omit", "raise"}
        Drop rows with missing values in the variables used, or raise.
    data_name : str, optional
        Name printed on the summary's ``Data:`` line.
    start : array_like, optional
        Starting θ in lme4's order (default: lme4's, ``mixedfit.model.lme4_start``: 1 on the
        diagonal and 0 elsewhere, or from the group means when every term is ``(1|g)``).
    maxeval : int
        Most objective evaluations the optimizer may use.
    family : str or Family, optional
        A GLMM's family: R's names ``"binomial"``, ``"poisson"``, ``"Gamma"``,
        ``"inverse.gaussian"``, or ``mixedfit.family`` for another link;
        ``"gaussian"`` (identity link) is the linear model.  ``reml`` and
        ``start`` do not apply to a GLMM (see ``mixedfit.glmm_results.glmer``).
    nagq : int, default 1
        For a GLMM: 1 for the Laplace approximation, 0 for β inside PIRLS, up
        to 25 for adaptive Gauss–Hermite quadrature (one scalar random-effects term).
    method : {None, "moments"}
        None: the exact fit (REML or ML).  ``"moments"``: crossed random intercepts by the
        method of moments with GLS β, in time linear in the rows, for data too large for
        the exact fit (``mixedfit.moments``; ``reml``, ``start`` and ``maxeval`` do not apply).

    Returns
    -------
    MixedResults, or GlmmResults with ``family=``

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff"), reml=False)
    >>> round(fit.llf, 4)  # lme4: logLik = -163.6635
    -163.6635
    """
    glmm = family is not None and not is_linear_model(family)
    if glmm and method is not None:
        raise ModelSpecError(f"method={method!r} fits linear models only; a GLMM (family={family!r}) "
                             "is fitted by the Laplace approximation or quadrature (nagq=)")
    if glmm:
        if start is not None:
            raise ModelSpecError("start= is not implemented for GLMMs yet")
        if type(data).__module__.startswith("dask"):
            return mixed_dask_glmm(formula, data, family=family, nagq=nagq, weights=weights, offset=offset,
                                   na_action=na_action, data_name=data_name, maxeval=maxeval)
        return glmer(formula, data, family=family, nagq=nagq, weights=weights, offset=offset,
                     na_action=na_action, data_name=data_name, maxeval=maxeval)
    if method is not None:
        return dispatch(method, formula, data, reml=reml, weights=weights, offset=offset,
                        na_action=na_action, data_name=data_name, start=start, maxeval=maxeval)
    if type(data).__module__.startswith("dask"):  # checked by name: dask stays optional
        fit = mixed_dask(formula, data, reml=reml, weights=weights, offset=offset,
                         na_action=na_action, data_name=data_name, start=start, maxeval=maxeval)
    else:
        with setup_threads(_rows(data)):
            design = build_design(formula, data, weights=weights, offset=offset, na_action=na_action)
            model = MixedModel(design, reml=reml)
        fit = model.fit(
            result=MixedResults,
            start=None if start is None else np.asarray(start, float),
            maxeval=maxeval,
            data_name=data_name,
            weights_name=weights if isinstance(weights, str) else None,
            offset_name=offset if isinstance(offset, str) else None,
        )
    # what fit.update() calls again (R's getCall(fit)); data by reference, as R's call names it
    fit.call = Call(mixed, dict(formula=formula, data=data, reml=reml, weights=weights, offset=offset,
                                na_action=na_action, data_name=data_name))
    return fit


def _rows(data) -> int:
    """The rows of a DataFrame, or of a dict of columns (its first column's length)."""
    if hasattr(data, "shape"):
        return int(data.shape[0])
    return int(np.size(next(iter(data.values()), ()))) if isinstance(data, dict) else 0

"""broom.mixed's ``tidy()`` and ``glance()`` for a fit: its estimates as data frames.

The layout and names are broom.mixed's (``tidy.merMod``, ``glance.merMod``):

* ``effect``: ``"fixed"``, ``"ran_pars"`` (standard deviations and
  correlations), ``"ran_vals"`` (conditional modes) or ``"ran_coefs"``
  (per-group coefficients), in that order whatever order they are asked in;
* ``group``: the grouping factor as lme4's ``VarCorr`` labels it
  (``Subject``, ``Subject.1`` for a second term on it), ``"Residual"`` for σ,
  missing for fixed effects;
* ``term``: the coefficient; for variance parameters ``sd__(Intercept)``,
  ``cor__(Intercept).Days`` (the two columns in lme4's ``var1``, ``var2``
  order) and ``sd__Observation`` for the residual standard deviation;
* ``estimate, std.error, statistic, df, p.value``: for fixed effects
  lmerTest's t tests (``ddf``), as broom.mixed reports them for an
  ``lmerModLmerTest`` fit -- for a GLMM glmer's Wald z tests, without
  ``df``; only ``estimate`` for variance parameters (a GLMM of a family
  without a scale, binomial or Poisson, has no ``Residual`` row);
* ``conf.low, conf.high`` with ``conf_int=True``.

One difference: ``group`` is always there, also when only fixed effects
are asked for, so that the columns do not depend on ``effects``.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

from .distributions import norm_ppf, t_ppf
from .errors import MixedFitError, MixedFitWarning, warn
from .inference.parameters import varpar_names
from .inference.profile import profile_confint
from .summary import lmertest_ddf

__all__ = ["tidy", "glance"]

EFFECTS = ("fixed", "ran_pars", "ran_vals", "ran_coefs")
#: broom.mixed's column order (``reorder_cols``)
COLUMNS = (
    "effect", "group", "level", "term", "estimate", "std.error", "statistic", "df", "p.value",
    "conf.low", "conf.high",
)
_COEF_COLUMNS = {
    "Estimate": "estimate", "Std. Error": "std.error", "t value": "statistic", "df": "df",
    "Pr(>|t|)": "p.value", "z value": "statistic", "Pr(>|z|)": "p.value",
}


def _effects(effects: str | Iterable[str]) -> list[str]:
    wanted = [effects] if isinstance(effects, str) else list(effects)
    unknown = sorted(set(wanted) - set(EFFECTS))
    if unknown:
        raise MixedFitError(f"unknown effects {unknown}; use some of {', '.join(EFFECTS)}")
    return [e for e in EFFECTS if e in wanted]


class _Intervals:
    """Confidence limits of (sd, cor, σ) and β, computed at most once per ``tidy`` call.

    A profile or a bootstrap covers the parameters ``parm`` selects in one go,
    and a bootstrap must give fixed and random parts from the same replicates.
    """

    def __init__(self, fit: Any, level: float, method: str, parm: str | None, profile, kw: dict):
        self.fit, self.level, self.method, self.parm = fit, level, method.lower(), parm
        self.profile, self.kw = profile, kw
        self._table: pd.DataFrame | None = None

    def table(self) -> pd.DataFrame:
        """lme4's ``confint`` rows (variance parameters, then β), as two columns."""
        if self._table is None:
            if self.method == "profile" and self.profile is not None:
                self._table = profile_confint(self.profile, level=self.level)
            else:
                self._table = self.fit.confint(method=self.method, level=self.level, parm=self.parm, **self.kw)
        return self._table

    def varpar(self) -> np.ndarray:
        names = varpar_names(self.fit)
        return self.table().reindex(names if _has_residual(self.fit) else names[:-1]).to_numpy(float)

    def fixed(self, coef: pd.DataFrame) -> np.ndarray:
        """β limits; Wald ones use t quantiles with lmerTest's df when there are df."""
        if self.method == "wald" and "df" in coef:
            q = t_ppf((1 + self.level) / 2, coef["df"].to_numpy(float))
            half = q * coef["std.error"].to_numpy(float)
            est = coef["estimate"].to_numpy(float)
            return np.column_stack([est - half, est + half])
        return self.table().reindex(coef["term"]).to_numpy(float)

    def wald(self, frame: pd.DataFrame) -> np.ndarray:
        """estimate ± z·std.error, the only limits conditional modes have."""
        if self.method != "wald":
            raise MixedFitError("conditional modes (ran_vals) have Wald intervals only")
        half = norm_ppf((1 + self.level) / 2) * frame["std.error"].to_numpy(float)
        est = frame["estimate"].to_numpy(float)
        return np.column_stack([est - half, est + half])


def _fixed(fit: Any, ddf: str | None, intervals: _Intervals | None) -> pd.DataFrame:
    table = fit.coef_table(ddf=lmertest_ddf(ddf) or "lme4")
    frame = table.rename(columns=_COEF_COLUMNS).rename_axis("term").reset_index()
    frame.insert(0, "group", None)
    if intervals is not None:
        frame[["conf.low", "conf.high"]] = intervals.fixed(frame)
    return frame


def _ran_pars(fit: Any, ddf: str | None, intervals: _Intervals | None) -> pd.DataFrame:
    """sd and cor rows per term in lme4's ``order = "lower.tri"`` (θ's order), then σ."""
    rows = []
    for label, cnames, cov in fit.vc_blocks:
        sd = np.sqrt(np.diag(cov))
        for j in range(len(cnames)):
            rows.append((label, f"sd__{cnames[j]}", sd[j]))
            for i in range(j + 1, len(cnames)):
                denom = sd[i] * sd[j]
                cor = cov[i, j] / denom if denom > 0 else float("nan")
                rows.append((label, f"cor__{cnames[j]}.{cnames[i]}", cor))
    if _has_residual(fit):
        rows.append(("Residual", "sd__Observation", fit.sigma))
    frame = pd.DataFrame(rows, columns=["group", "term", "estimate"])
    if intervals is not None:
        frame[["conf.low", "conf.high"]] = intervals.varpar()
    return frame


def _has_residual(fit: Any) -> bool:
    """Whether the fit has a residual standard deviation: linear fits and GLMMs with a scale."""
    family = getattr(fit, "family", None)
    return family is None or family.has_dispersion


def _stack(frames: dict[str, pd.DataFrame], sds: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Per-group (levels × terms) frames as rows: group, level, term, estimate (, std.error),
    term by term and level by level within each group, as ``as.data.frame(ranef())``."""
    parts = []
    for group, frame in frames.items():
        for term in frame.columns:
            part = pd.DataFrame(
                {"group": group, "level": frame.index.astype(str), "term": term, "estimate": frame[term].to_numpy()}
            )
            if sds is not None:
                part["std.error"] = sds[group][term].to_numpy()
            parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _ran_vals(fit: Any, ddf: str | None, intervals: _Intervals | None) -> pd.DataFrame:
    modes = fit.ranef(condvar=True)
    frame = _stack(modes, {g: m.attrs["condsd"] for g, m in modes.items()})
    if intervals is not None:
        frame[["conf.low", "conf.high"]] = intervals.wald(frame)
    return frame


def _ran_coefs(fit: Any, ddf: str | None, intervals: _Intervals | None) -> pd.DataFrame:
    frame = _stack(fit.coef())
    if intervals is not None:
        warn("no intervals for per-group coefficients (ran_coefs): NaN", MixedFitWarning)
        frame[["conf.low", "conf.high"]] = np.nan
    return frame


_BUILDERS = {"fixed": _fixed, "ran_pars": _ran_pars, "ran_vals": _ran_vals, "ran_coefs": _ran_coefs}


def tidy(
    fit: Any,
    effects: str | Iterable[str] = "fixed",
    conf_int: bool = False,
    conf_level: float = 0.95,
    conf_method: str = "wald",
    ddf: str | None = "satterthwaite",
    profile: pd.DataFrame | None = None,
    **confint_kw: Any,
) -> pd.DataFrame:
    """The fit's estimates as a tidy data frame, as broom.mixed's ``tidy(fit)``.

    Parameters
    ----------
    fit : MixedResults
    effects : str or list of str
        Any of ``"fixed"``, ``"ran_pars"``, ``"ran_vals"``, ``"ran_coefs"``.
    conf_int : bool
        Add ``conf.low`` and ``conf.high``.
    conf_level : float
        Confidence level.
    conf_method : {"wald", "profile", "boot"}
        As ``confint``.  Wald limits of
        fixed effects use t quantiles with the ``ddf`` degrees of freedom
        (broom.mixed's for lmerTest fits), normal ones with ``ddf=None``;
        Wald limits of variance parameters are NaN, as lme4's.  Conditional
        modes (``ran_vals``) have Wald limits only: estimate ± z·conditional SD.
    ddf : {"Satterthwaite", "Kenward-Roger", "lme4", None}
        Degrees of freedom for the fixed effects' t tests (any case);
        ``None`` or ``"lme4"`` gives lme4's table, without ``df`` and ``p.value``.
    profile : pandas.DataFrame, optional
        A profile from ``profile``, reused
        for ``conf_method="profile"`` instead of profiling again.
    **confint_kw
        Passed to ``confint`` (``nsim``,
        ``seed``, ``progress`` for the bootstrap, ...).

    Returns
    -------
    pandas.DataFrame
        Columns among ``effect, group, level, term, estimate, std.error,
        statistic, df, p.value, conf.low, conf.high`` (``level`` with
        ``ran_vals`` or ``ran_coefs`` only).

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
    >>> tidy(fit)[["term", "estimate", "std.error", "statistic", "df"]].round(2)
              term  estimate  std.error  statistic    df
    0  (Intercept)    251.41       6.82      36.84  17.0
    1         Days     10.47       1.55       6.77  17.0
    >>> tidy(fit, effects="ran_pars")[["group", "term", "estimate"]].round(3)
          group                   term  estimate
    0   Subject        sd__(Intercept)    24.741
    1   Subject  cor__(Intercept).Days     0.066
    2   Subject               sd__Days     5.922
    3  Residual        sd__Observation    25.592
    """
    wanted = _effects(effects)
    intervals = None
    if conf_int:
        # one confint call covers what is asked: every parameter, or just one kind
        both = {"fixed", "ran_pars"} <= set(wanted)
        parm = None if both else ("beta_" if "fixed" in wanted else "theta_")
        intervals = _Intervals(fit, conf_level, conf_method, parm, profile, confint_kw)
    parts = []
    for effect in wanted:
        frame = _BUILDERS[effect](fit, ddf, intervals)
        frame.insert(0, "effect", effect)
        parts.append(frame)
    out = pd.concat(parts, ignore_index=True)
    return out[[c for c in COLUMNS if c in out.columns]]


def glance(fit: Any) -> pd.DataFrame:
    """One row of fit statistics, as broom.mixed's ``glance(fit)``.

    Columns ``nobs, sigma, logLik, AIC, BIC, deviance, df.residual``; for a
    REML fit ``deviance`` is replaced by ``REMLcrit``, the REML criterion, as
    broom.mixed does (``logLik``, ``AIC`` and ``BIC`` are then REML's too).

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
    >>> glance(fit).round(2)
       nobs  sigma  logLik      AIC      BIC  REMLcrit  df.residual
    0   180  25.59 -871.81  1755.63  1774.79   1743.63          174
    """
    crit = ("REMLcrit", fit.reml_criterion) if fit.reml else ("deviance", fit.deviance)
    row = {
        "nobs": fit.nobs, "sigma": fit.sigma, "logLik": fit.llf, "AIC": fit.aic, "BIC": fit.bic,
        crit[0]: crit[1], "df.residual": fit.df_resid,
    }
    return pd.DataFrame([row])

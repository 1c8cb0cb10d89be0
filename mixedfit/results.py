"""The lme4 face of a linear mixed fit: ``MixedResults``, what ``mixedfit.mixed`` returns.

``MixedResults`` is ``mixedfit.fitted.LinearFit`` (the numbers) with lme4's
methods on top: intervals, profiles, bootstrap, tests, predictions, summary,
tidy frames, plots and refits, each delegating to the module that does it.
``Summary`` is the object its ``summary()`` returns.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from . import html, plots, summary, tidy, update
from .fitted import LinearFit
from .inference import bootstrap, confint, drop1, emmeans, fixed_tests, predict, profile, r2, ranova, wald

__all__ = ["MixedResults", "Summary"]


class MixedResults(LinearFit):
    """A fitted linear mixed model, as ``lmer`` returns it.

    Build one with ``mixedfit.mixed``; its numbers are ``mixedfit.fitted.LinearFit``'s.

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
    >>> fit.coef_table()["df"].round(2).tolist()  # lmerTest: 17, 17
    [17.0, 17.0]
    >>> fit.confint(method="wald").loc["Days"].round(3).tolist()  # lme4: 7.438, 13.497
    [7.438, 13.497]
    """

    # -- inference (mixedfit.inference) ---------------------------------------
    def confint(self, method: str = "profile", level: float = 0.95, parm=None, **kw) -> pd.DataFrame:
        """Confidence intervals, as lme4's ``confint(fit, method=, oldNames=FALSE)``.

        ``method`` is ``"profile"`` (likelihood profile, lme4's default), ``"wald"``
        or ``"boot"`` (parametric bootstrap; pass ``n=`` and ``seed=``).
        See ``mixedfit.inference.confint.confint``.
        """
        with self.model.blas_threads():
            return confint.confint(self, method=method, level=level, parm=parm, **kw)

    def profile(self, which=None, **kw) -> pd.DataFrame:
        """The likelihood profile (lme4's ``as.data.frame(profile(fit))``); see ``mixedfit.inference.profile.profile``."""
        with self.model.blas_threads():
            return profile.profile(self, which=which, **kw)

    def bootstrap(self, n: int, seed: int | None = None, progress: bool | None = None, statistic=None):
        """Parametric bootstrap refits (lme4's ``bootMer``, ``statistic`` its ``FUN``); see ``mixedfit.inference.bootstrap.bootstrap``."""
        with self.model.blas_threads():
            return bootstrap.bootstrap(self, n, seed=seed, progress=progress, statistic=statistic)

    def vcov_varpar(self, scale: str = "theta") -> pd.DataFrame:
        """Asymptotic covariance of the variance parameters from the Hessian of the deviance."""
        with self.model.blas_threads():
            return wald.vcov_varpar(self, scale=scale)

    def coef_table(self, ddf: str = "satterthwaite") -> pd.DataFrame:
        """lmerTest's coefficient table: Estimate, Std. Error, df, t value, Pr(>|t|)."""
        with self.model.blas_threads():
            return fixed_tests.coef_table(self, ddf=ddf)

    @property
    def pvalues(self) -> pd.Series:
        """Satterthwaite p-values of the fixed effects (lmerTest's default)."""
        return self.coef_table()["Pr(>|t|)"]

    def anova(self, ddf: str = "satterthwaite") -> pd.DataFrame:
        """lmerTest's Type III ANOVA table of the fixed-effect terms.

        To compare models by likelihood ratio, use ``mixedfit.anova``.
        """
        with self.model.blas_threads():
            return fixed_tests.anova_type3(self, ddf=ddf)

    def emmeans(self, specs, by=None, ddf: str | None = None, level: float = 0.95,
                pairwise: bool = False, adjust: str = "tukey"):
        """Estimated marginal means (R's emmeans); see ``mixedfit.inference.emmeans.emmeans``."""
        with self.model.blas_threads():
            return emmeans.emmeans(self, specs, by=by, ddf=ddf, level=level, pairwise=pairwise,
                           adjust=adjust)

    def predict(self, newdata=None, re_form=None, allow_new_levels: bool = False) -> pd.Series:
        """Predictions with lme4's semantics; see ``mixedfit.inference.predict.predict``."""
        return predict.predict(self, newdata=newdata, re_form=re_form, allow_new_levels=allow_new_levels)

    def simulate(self, nsim: int = 1, seed=None, use_u: bool = False) -> pd.DataFrame:
        """Responses simulated from the fitted model (lme4's ``simulate``)."""
        return predict.simulate(self, nsim=nsim, seed=seed, use_u=use_u)

    def refit(self, new_y) -> "MixedResults":
        """The same model fitted to a new response (lme4's ``refit``)."""
        return predict.refit(self, new_y)

    # -- printing -------------------------------------------------------------
    def summary(self, ddf: str | None = None):
        """lme4's ``summary(fit)``; with ``ddf="satterthwaite"`` lmerTest's, with p-values."""
        return Summary(self, ddf=ddf)

    def __str__(self) -> str:
        return summary.print_text(self)

    def __repr__(self) -> str:
        return self.__str__()

    def _repr_html_(self) -> str:
        """lme4's summary as HTML tables, for notebooks (see ``mixedfit.html``)."""
        return html.summary_html(self)

    # -- presentation ---------------------------------------------------------
    def tidy(
        self,
        effects="fixed",
        conf_int: bool = False,
        conf_level: float = 0.95,
        conf_method: str = "wald",
        ddf: str | None = "satterthwaite",
        **kw,
    ) -> pd.DataFrame:
        """Estimates as a data frame, as broom.mixed's ``tidy()``; see ``mixedfit.tidy.tidy``."""
        return tidy.tidy(self, effects, conf_int, conf_level, conf_method, ddf, **kw)

    def glance(self) -> pd.DataFrame:
        """One row of fit statistics, as broom.mixed's ``glance()``; see ``mixedfit.tidy.glance``."""
        return tidy.glance(self)

    def plot_ranef(self, **kw):
        """Caterpillar plot of the random effects; see ``mixedfit.plots.plot_ranef``."""
        return plots.plot_ranef(self, **kw)

    def plot_profile(self, profile: pd.DataFrame | None = None, **kw):
        """ζ against each parameter; see ``mixedfit.plots.plot_profile``."""
        return plots.plot_profile(self, profile=profile, **kw)

    def plot_diagnostics(self, **kw):
        """Residual and random-effects QQ plots; see ``mixedfit.plots.plot_diagnostics``."""
        return plots.plot_diagnostics(self, **kw)

    # -- after the fit: update, R², ICC, ranova, drop1 --------------------------
    #: ``mixedfit.mixed`` and its arguments (set by it; None for a refit).
    call: update.Call | None = None

    def update(self, formula: str | None = None, **changes) -> "MixedResults":
        """Refit with an edited formula (``". ~ . - x"``) or arguments (R's ``update``); see ``mixedfit.update.update``."""
        return update.update(self, formula, **changes)

    def r2(self) -> dict[str, float]:
        """Marginal and conditional R² (``performance::r2_nakagawa``); see ``mixedfit.inference.r2.r2``."""
        return r2.r2(self)

    def icc(self) -> dict[str, float]:
        """Adjusted and unadjusted ICC (``performance::icc``); see ``mixedfit.inference.r2.icc``."""
        return r2.icc(self)

    def ranova(self):
        """lmerTest's ``ranova()``: a likelihood-ratio test per random term; see ``mixedfit.inference.ranova.ranova``."""
        return ranova.ranova(self)

    def drop1(self, test: str = "F", ddf: str = "satterthwaite"):
        """Tests of dropping each marginal fixed term (lmerTest's / lme4's ``drop1``); see ``mixedfit.inference.drop1.drop1``."""
        with self.model.blas_threads():
            return drop1.drop1(self, test=test, ddf=ddf)


class Summary:
    """lme4's ``summary(fit)``: prints as lme4 prints it.

    Parameters
    ----------
    fit : MixedResults
        The fitted model.
    ddf : {None, "Satterthwaite", "Kenward-Roger", "lme4"}
        With a method, lmerTest's summary with its t-tests (any case; see
        ``mixedfit.inference.satterthwaite.normalize_ddf``).

    Raises
    ------
    ModelSpecError
        An unknown ``ddf``, at once rather than when printed.
    """

    def __init__(self, fit: Any, ddf: str | None = None):
        self.fit = fit
        self.ddf = summary.lmertest_ddf(ddf)

    def _formula(self) -> str | None:
        """lmerTest prints the formula as written; lme4 its expansion (``fit.formula``)."""
        written = self.fit.model.design.formula_written if self.ddf else None
        return written or None

    def __str__(self) -> str:
        return summary.summary_text(self.fit, self.ddf, formula=self._formula())

    __repr__ = __str__

    def _repr_html_(self) -> str:
        """The same blocks and numbers as the text, as HTML tables for notebooks."""
        return html.summary_html(self.fit, self.ddf, formula=self._formula())

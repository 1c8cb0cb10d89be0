"""The fitted GLMM as ``glmer`` returns it: a thin face on ``GlmmFit``.

``GlmmResults`` shares the linear results' code wherever the quantity
is the same (θ's names, ``ranef``, ``coef``, ``VarCorr``'s layout, AIC/BIC,
``to_dict``) and replaces what a GLMM defines otherwise: σ (1 for binomial and
Poisson), ``vcov`` (lme4's, from the finite-difference Hessian), ``deviance``
(the sum of squared deviance residuals), fitted values on the response
scale, the residual types, z tests, and glmer's summary.
"""

from __future__ import annotations

import html
from functools import cached_property

import numpy as np
import pandas as pd

from .distributions import norm_ppf, norm_sf
from .errors import ConvergenceWarning, ModelSpecError, SingularFitWarning, warn
from .family import Family, family as make_family
from .fitted import plain
from .glmm import GlmmFit, GlmmModel, PirlsState
from .glmm_summary import GlmmSummary, print_text
from .inference.glmm_bootstrap import glmm_bootstrap
from .inference.glmm_profile import glmm_parameter_names, glmm_profile
from .inference.glmm_simulate import glmm_refit, glmm_simulate
from .inference.parameters import level_labels, select_parm
from .inference.predict import predict as predict_eta
from .model import blas_controller
from .inference.profile import profile_confint
from .results import MixedResults
from .terms import build_design
from .tidy import tidy

__all__ = ["GlmmResults", "glmer", "glmm_residuals", "warn_fit"]

_RESIDUAL_TYPES = ("deviance", "pearson", "response", "working")


class GlmmResults(MixedResults):
    """A fitted generalized linear mixed model, as ``glmer`` returns it.

    Build one with ``mixedfit.mixed`` and ``family=``.

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                mf.load_dataset("cbpp"), family="binomial")
    >>> round(fit.llf, 3)  # lme4: logLik = -92.027
    -92.027
    """

    def __init__(self, model: GlmmModel, fitted: GlmmFit, *, data_name: str | None = None,
                 weights_name: str | None = None, offset_name: str | None = None):
        self.model = model
        self.fitted = fitted
        self.optsummary = fitted.opt
        self._conv = fitted.conv
        self.data_name = data_name
        self.weights_name = weights_name
        self.offset_name = offset_name
        self.reml = False
        self.formula = model.design.formula
        self.nobs = model.design.nobs
        self._beta = fitted.beta
        self.family = model.family
        self.nagq = model.nagq

    # -- parameters -------------------------------------------------------------
    @property
    def theta(self) -> pd.Series:
        """θ in lme4's order and with lme4's names (``getME(fit, "theta")``)."""
        return pd.Series(self.fitted.theta, index=self.theta_names, name="theta")

    @property
    def pwrss(self) -> float:
        """lme4's penalized weighted residual sum of squares (Pearson χ² + ‖ũ‖²)."""
        return self.model.pwrss(self.fitted.state)

    @property
    def sigma(self) -> float:
        """lme4's ``sigma()``: 1 for binomial and Poisson fits, else √(pwrss/n)."""
        return self.model.sigma(self.fitted.state)

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance of β̂ as lme4's ``vcov``: from the finite-difference Hessian of the deviance
        when it is positive definite, else σ²(R_X R_Xᵀ)⁻¹ (and for nagq=0)."""
        return pd.DataFrame(self.fitted.vcov, index=self.xnames, columns=self.xnames)

    @property
    def zvalues(self) -> pd.Series:
        """Wald z statistics β̂ / SE."""
        return self.fixef / self.bse

    tvalues = zvalues  # the name the shared summary helpers read

    @property
    def pvalues(self) -> pd.Series:
        """Two-sided Wald p-values, ``Pr(>|z|)`` of glmer's summary."""
        return pd.Series(2.0 * norm_sf(np.abs(self.zvalues.to_numpy())), index=self.xnames)

    # -- likelihood -------------------------------------------------------------
    @property
    def npar(self) -> int:
        """θ, β, and σ for a family with a dispersion parameter."""
        return self.model.ntheta + len(self.xnames) + int(self.family.has_dispersion)

    @property
    def deviance(self) -> float:
        """lme4's ``deviance()`` of a GLMM: the sum of squared deviance residuals.

        The summary's ``deviance`` column is −2 logLik instead (``minus2llf``).
        """
        return float(np.sum(self.fitted.state.dev_resid))

    @property
    def minus2llf(self) -> float:
        """−2 log-likelihood, the ``deviance`` glmer's summary prints."""
        return -2.0 * self.llf

    # -- random effects -----------------------------------------------------------
    @cached_property
    def _templates_lme4(self) -> list[np.ndarray]:
        return self.model.layout.templates(self.fitted.theta)

    @property
    def varcorr(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr(fit))``; a Residual row only for families with a scale."""
        frame = MixedResults.varcorr.fget(self)
        return frame if self.family.has_dispersion else frame[frame["grp"] != "Residual"].reset_index(drop=True)

    def _term_blocks(self, vector: np.ndarray) -> list[np.ndarray]:
        """A vector over all random effects split per term (lme4 order), each (ℓ, S)."""
        out, offset = [], 0
        for term in self.model.design.terms:
            k = term.size * term.nlevels
            out.append(vector[offset: offset + k].reshape(term.nlevels, term.size))
            offset += k
        return out

    @cached_property
    def _b(self) -> list[np.ndarray]:
        """Conditional modes b = Λũ per term, each (ℓ, S)."""
        return [u @ T.T for u, T in zip(self._term_blocks(self.fitted.state.u), self._templates_lme4)]

    @cached_property
    def _condvar(self) -> list[np.ndarray]:
        """σ² Λ (ΛᵀZᵀWZΛ + I)⁻¹ Λᵀ per level, per term (lme4's ``condVar``)."""
        terms = self.model.design.terms
        blocks = self.fitted.state.L.inverse_blocks([(t.nlevels, t.size) for t in terms])
        return [self.sigma**2 * (T @ block @ T.T) for T, block in zip(self._templates_lme4, blocks)]

    # -- fitted values and residuals -----------------------------------------------
    @cached_property
    def fittedvalues(self) -> pd.Series:
        """Fitted means μ̂ on the response scale (lme4's ``fitted``; proportions for a binomial)."""
        return pd.Series(self.fitted.state.mu, index=self.model.design.rows)

    @property
    def linear_predictor(self) -> pd.Series:
        """η̂ = Xβ̂ + Zb̂ + offset."""
        return pd.Series(self.fitted.state.eta, index=self.model.design.rows)

    def resid(self, type: str = "deviance") -> pd.Series:  # noqa: A002 (lme4's argument name)
        """Residuals of one of lme4's types: ``"deviance"`` (default), ``"pearson"``, ``"response"``, ``"working"``."""
        return pd.Series(glmm_residuals(self.model, self.fitted.state, type), index=self.model.design.rows)

    @property
    def scaled_resid(self) -> np.ndarray:
        """Pearson residuals over σ: the summary's "Scaled residuals"."""
        return self.resid("pearson").to_numpy() / self.sigma

    def pearson_dispersion(self) -> float:
        """Σ Pearson residual² / df.resid: above 1 suggests overdispersion (binomial, Poisson)."""
        r = self.resid("pearson").to_numpy()
        return float(r @ r / self.df_resid)

    # -- inference ---------------------------------------------------------------
    def confint(self, method: str = "profile", level: float = 0.95, parm=None, **kw) -> pd.DataFrame:
        """Confidence intervals, as lme4's ``confint(fit, method=, oldNames = FALSE)`` of a glmer fit.

        Rows ``sd_…|group`` / ``cor_…|group`` (no σ), then the fixed effects.
        ``method``: ``"profile"`` (lme4's default; ``profile``),
        ``"wald"`` (β̂ ± z·SE; NaN for the variance parameters, as lme4) or
        ``"boot"`` (percentile intervals of ``bootstrap``; ``nsim``
        (default 500), ``seed``, ``progress``, ``boot_type``).  ``parm``
        selects rows as ``mixedfit.inference.parameters.select_parm``.
        """
        key = str(method).lower()
        if key not in ("profile", "wald", "boot"):
            raise ModelSpecError(f"unknown confidence interval method {method!r}; use one of profile, wald, boot")
        probs, labels = level_labels(level)
        rows = select_parm(parm, glmm_parameter_names(self), self.model.ntheta)
        if key == "wald":
            z = norm_ppf(probs[1])
            beta, se = self.fixef.to_numpy(), self.bse.to_numpy()
            nan = np.full(self.model.ntheta, np.nan)
            table = pd.DataFrame({labels[0]: np.concatenate([nan, beta - z * se]),
                                  labels[1]: np.concatenate([nan, beta + z * se])},
                                 index=glmm_parameter_names(self))
            return table.iloc[rows]
        if key == "profile":
            return profile_confint(self.profile(which=rows, **kw), level=level)
        boot_type = kw.pop("boot_type", "perc")
        result = self.bootstrap(kw.pop("nsim", 500), **kw)
        return result.confint(kind=boot_type, level=level).iloc[rows]

    def profile(self, which=None, **kw) -> pd.DataFrame:
        """The likelihood profile (lme4's ``as.data.frame(profile(fit))``); see
        ``mixedfit.inference.glmm_profile.glmm_profile``."""
        return glmm_profile(self, which=which, **kw)

    def bootstrap(self, n: int, seed: int | None = None, progress: bool | None = None, statistic=None):
        """Parametric bootstrap refits (lme4's ``bootMer``); see
        ``mixedfit.inference.glmm_bootstrap.glmm_bootstrap``."""
        return glmm_bootstrap(self, n, seed=seed, progress=progress, statistic=statistic)

    def _not_yet(self, what: str):
        raise ModelSpecError(f"{what} is not implemented for GLMMs yet")

    def vcov_varpar(self, scale: str = "theta"):
        self._not_yet("vcov_varpar()")

    def coef_table(self, ddf: str | None = None) -> pd.DataFrame:
        """glmer's coefficient table: Estimate, Std. Error, z value, Pr(>|z|).

        A GLMM has Wald z tests only: ``ddf`` other than None or ``"lme4"``
        (Satterthwaite, Kenward-Roger) is refused.
        """
        if ddf is not None and str(ddf).lower() != "lme4":
            raise ModelSpecError(f"ddf={ddf!r}: a GLMM has Wald z tests; Satterthwaite and Kenward-Roger "
                                 "degrees of freedom are for linear mixed models")
        return pd.DataFrame({"Estimate": self.fixef, "Std. Error": self.bse, "z value": self.zvalues,
                             "Pr(>|z|)": self.pvalues})

    def anova(self, ddf: str = "satterthwaite"):
        self._not_yet("the type III ANOVA table")

    def predict(self, newdata=None, re_form=None, allow_new_levels: bool = False,
                type: str = "link") -> pd.Series:  # noqa: A002 (lme4's argument name)
        """Predictions as lme4's ``predict(fit, newdata, re.form, allow.new.levels, type)``.

        ``type="link"`` (lme4's default) gives η, ``type="response"`` the mean
        μ = g⁻¹(η).  The other arguments are those of
        ``mixedfit.inference.predict.predict``.
        """
        if type not in ("link", "response"):
            raise ModelSpecError(f"type must be 'link' or 'response', not {type!r}")
        eta = predict_eta(self, newdata=newdata, re_form=re_form, allow_new_levels=allow_new_levels)
        return eta if type == "link" else pd.Series(self.family.linkinv(eta.to_numpy()), index=eta.index)

    def simulate(self, nsim: int = 1, seed=None, use_u: bool = False) -> pd.DataFrame:
        """Responses simulated from the fit, as lme4's ``simulate(fit, nsim, seed, use.u)``.

        Random effects drawn afresh (or, with ``use_u``, held at their modes),
        then responses from the family at μ = g⁻¹(η): binomial successes
        (out of the trials of a ``cbind`` response; 0/1 otherwise), Poisson
        counts, Gamma values with shape 1/σ², inverse Gaussian values with
        λ = weight/σ².  numpy's generator: R's draws cannot be reproduced.
        """
        return glmm_simulate(self, nsim=nsim, seed=seed, use_u=use_u)

    def refit(self, new_y) -> "GlmmResults":
        """The same model fitted to a new response, as lme4's ``refit(fit, newresp)``.

        ``new_y`` is on ``simulate``'s scale, one value per row fitted
        (a column of ``simulate`` will do): the successes of a
        ``cbind(successes, failures)`` response (the trials stay the
        fit's), else the response as fitted (0/1 or a proportion, counts,
        positive values).  X, Z, weights, offset, family and nagq are the
        fit's; the optimizer starts from the fit's θ, as lme4's does.
        Warns as ``glmer`` does.

        Examples
        --------
        >>> import mixedfit as mf
        >>> fit = mf.mixed("cbind(incidence, size - incidence) ~ period + (1 | herd)",
        ...                mf.load_dataset("cbpp"), family="binomial")
        >>> again = fit.refit(fit.model.y * fit.model.trials)
        >>> bool(abs(again.llf - fit.llf) < 1e-6)
        True
        """
        fitted = glmm_refit(self, new_y)
        warn_fit(fitted.fitted)
        return fitted

    def tidy(self, effects="fixed", conf_int: bool = False, conf_level: float = 0.95,
             conf_method: str = "wald", ddf: str | None = None, **kw) -> pd.DataFrame:
        """Estimates as a data frame, as broom.mixed's ``tidy()`` of a glmer fit: z statistics,
        no ``df``; see ``mixedfit.tidy.tidy``."""
        return tidy(self, effects, conf_int, conf_level, conf_method, ddf, **kw)

    # -- printing ----------------------------------------------------------------
    def summary(self, ddf: str | None = None):
        """glmer's ``summary(fit)``: prints as lme4 prints it."""
        if ddf is not None:
            raise ModelSpecError("a GLMM's summary has Wald z tests; ddf= does not apply")
        return GlmmSummary(self)

    def __str__(self) -> str:
        return print_text(self)

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self.summary()))}</pre>"

    # -- serialization ------------------------------------------------------------
    def to_dict(self) -> dict:
        """Every estimate as plain Python values (see ``MixedResults.to_dict``), with the family,
        nagq, the deviance residuals' sum and the summary's −2 logLik."""
        record = super().to_dict()
        record.update({
            "family": self.family.name,
            "link": self.family.link_name,
            "nagq": self.nagq,
            "minus2logLik": plain(self.minus2llf),
            "stage1_feval": int(self.fitted.stage1.feval),
            "vcov_warnings": list(self.fitted.vcov_warnings),
        })
        return record


def glmm_residuals(model: GlmmModel, state: PirlsState, type: str) -> np.ndarray:  # noqa: A002
    """The residuals of one of lme4's types at a PIRLS state's μ, on the model's rows."""
    mu = state.mu
    if type == "deviance":
        d = np.sqrt(np.maximum(state.dev_resid, 0.0))
        return np.where(model.y > mu, d, -d)
    if type == "pearson":
        return (model.y - mu) * np.sqrt(model.weights / model.family.variance(mu))
    if type == "response":
        return model.y - mu
    if type == "working":
        return (model.y - mu) / model.family.mu_eta(state.eta)
    raise ModelSpecError(f"type must be one of {', '.join(map(repr, _RESIDUAL_TYPES))}, not {type!r}")


def glmer(formula: str, data, *, family: str | Family, nagq: int = 1, weights=None, offset=None,
          na_action: str = "omit", data_name: str | None = None, maxeval: int = 100_000) -> GlmmResults:
    """Fit a GLMM as lme4's ``glmer`` does; ``mixedfit.mixed`` with ``family=`` calls this.

    Warns (as lme4 does) on a singular fit, on failed convergence checks and
    when the Hessian-based ``vcov`` falls back to R_X.
    """
    fam = make_family(family)
    # BLAS single-threaded as in the fit (GlmmModel.optimize): the design's QRs (rank, exact fit) of
    # a few thousand rows took three times as long on two threads (VerbAgg: 27 ms instead of 10)
    with blas_controller().limit(limits=1, user_api="blas"):
        design = build_design(formula, data, weights=weights, offset=offset, na_action=na_action, family=fam)
    model = GlmmModel(design, fam, nagq=nagq)
    fitted = model.optimize(maxeval)
    results = GlmmResults(model, fitted, data_name=data_name,
                          weights_name=weights if isinstance(weights, str) else None,
                          offset_name=offset if isinstance(offset, str) else None)
    warn_fit(fitted)
    return results


def warn_fit(fitted: GlmmFit) -> None:
    """lme4's warnings after a fit: vcov's fall-back, a singular fit, failed convergence checks."""
    for msg in fitted.vcov_warnings:
        warn(msg, ConvergenceWarning)
    for msg in _warning_texts(fitted.conv.messages):
        warn(msg, SingularFitWarning if msg.startswith("boundary") else ConvergenceWarning)


def _warning_texts(messages: list[str]) -> list[str]:
    """lme4's warnings from its convergence messages: the Hessian's pasted into one, with ";"."""
    hessian = [m for m in messages if m.startswith("Model is nearly unidentifiable")]
    others = [m for m in messages if m not in hessian]
    return others + ([";".join(hessian)] if hessian else [])

"""The fitted numbers of a linear mixed model: estimates, random effects, likelihood.

``LinearFit`` is what the engine's optimum gives, and all that the inference
modules need: β̂, b̂, σ̂, vcov, VarCorr, fitted values and residuals,
``to_dict``.  Everything here is computed once from the factor at the
optimum θ; nothing refits, infers or prints (``mixedfit.results.MixedResults``,
the lme4 face, adds that on top).  Names and layouts follow lme4: ``fixef``,
``ranef``, ``VarCorr`` (``LinearFit.varcorr``), ``coef``, ``getME(fit, "theta")``.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd
from scipy.linalg import lapack

from .blocks import Factor, batched_lower_inverse
from .model import Convergence, MixedModel
from .optimize import OptSummary
from .terms import SCALE_MESSAGE

__all__ = ["LinearFit", "plain"]


class LinearFit:
    """The numbers of a fitted linear mixed model, from the engine at its optimum.

    Parameters
    ----------
    model : MixedModel
        The engine that was optimized.
    opt : OptSummary
        The optimizer's record; ``opt.final`` is θ̂.
    conv : Convergence
        lme4's convergence checks at θ̂.
    factor : Factor, optional
        The model's factor at θ̂, where the caller has it (default: made here).
    data_name, weights_name, offset_name : str, optional
        Names kept for printing.

    Examples
    --------
    >>> import mixedfit as mf
    >>> from mixedfit.terms import build_design
    >>> model = mf.MixedModel(build_design("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy")))
    >>> fit = model.fit(result=LinearFit)
    >>> fit.fixef.round(3)
    (Intercept)    251.405
    Days            10.467
    dtype: float64
    >>> round(fit.sigma, 3)
    25.592
    """

    def __init__(
        self,
        model: MixedModel,
        opt: OptSummary,
        conv: Convergence,
        *,
        factor: Factor | None = None,
        data_name: str | None = None,
        weights_name: str | None = None,
        offset_name: str | None = None,
    ):
        self.model = model
        self.optsummary = opt
        self._conv = conv
        self.data_name = data_name
        self.weights_name = weights_name
        self.offset_name = offset_name
        design = model.design
        self.reml = model.reml
        self.formula = design.formula
        self.nobs = design.nobs
        self._factor = model.factor(opt.final) if factor is None else factor
        beta, u = model.cross.solve(self._factor)
        self._beta = beta
        self._u = u  # engine order

    # -- parameters -----------------------------------------------------------
    @property
    def theta(self) -> pd.Series:
        """θ in lme4's order and with lme4's names (``getME(fit, "theta")``)."""
        return pd.Series(self.optsummary.final, index=self.theta_names, name="theta")

    @property
    def theta_names(self) -> list[str]:
        """θ's names as lme4 gives them: ``Subject.(Intercept)``, ``Subject.Days.(Intercept)``."""
        return self.model.layout.names

    @cached_property
    def _term_labels(self) -> list[str]:
        """Group labels per term, lme4-style: ``Subject``, then ``Subject.1`` for a repeat."""
        seen: dict[str, int] = {}
        labels = []
        for term in self.model.design.terms:
            k = seen.get(term.group, 0)
            labels.append(term.group if k == 0 else f"{term.group}.{k}")
            seen[term.group] = k + 1
        return labels

    @property
    def xnames(self) -> list[str]:
        return list(self.model.design.xnames)

    @property
    def fixef(self) -> pd.Series:
        """Fixed-effects estimates β̂ (lme4's ``fixef``)."""
        return pd.Series(self._beta, index=self.xnames)

    params = fixef

    @cached_property
    def pwrss(self) -> float:
        """Penalized weighted residual sum of squares r²."""
        return self.model.cross.logdets(self._factor)[2]

    @property
    def df_sigma(self) -> int:
        n, p = self.nobs, len(self.xnames)
        return n - p if self.reml else n

    @property
    def sigma(self) -> float:
        """Residual standard deviation σ̂ (r²/(n−p) under REML, r²/n under ML)."""
        return float(np.sqrt(self.pwrss / self.df_sigma))

    @cached_property
    def _rx_inverse(self) -> np.ndarray:
        return self.model.cross.rx_inverse(self._factor)

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of β̂: σ² (R_X R_Xᵀ)⁻¹."""
        Ri = self._rx_inverse
        return pd.DataFrame(self.sigma**2 * (Ri.T @ Ri), index=self.xnames, columns=self.xnames)

    @property
    def bse(self) -> pd.Series:
        """Standard errors of β̂."""
        return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=self.xnames)

    @property
    def tvalues(self) -> pd.Series:
        return self.fixef / self.bse

    # -- likelihood -----------------------------------------------------------
    @property
    def npar(self) -> int:
        """Number of parameters: θ, β and σ."""
        return self.model.ntheta + len(self.xnames) + 1

    @property
    def llf(self) -> float:
        """Log-likelihood (the REML log-likelihood for REML fits), as lme4's ``logLik``."""
        return -0.5 * self.optsummary.fmin

    @property
    def reml_criterion(self) -> float:
        """The REML criterion at convergence (−2 × REML log-likelihood); NaN for ML fits."""
        return self.optsummary.fmin if self.reml else float("nan")

    @property
    def deviance(self) -> float:
        """The ML deviance −2 log L at the estimates (lme4's ``deviance(fit, REML = FALSE)``).

        For ML fits this is the minimized objective; for REML fits it is the ML
        deviance at the REML estimates (lme4 deprecates ``deviance()`` of a REML fit,
        which returned the REML criterion: that is ``reml_criterion``).
        """
        if not self.reml:
            return -2.0 * self.llf
        return self.model.objective_from_factor(self._factor, reml=False)

    @property
    def aic(self) -> float:
        return -2.0 * self.llf + 2.0 * self.npar

    @property
    def bic(self) -> float:
        return -2.0 * self.llf + np.log(self.nobs) * self.npar

    @property
    def df_resid(self) -> int:
        return self.nobs - self.npar

    # -- random effects -------------------------------------------------------
    @property
    def ngroups(self) -> dict[str, int]:
        """Number of levels of each grouping factor, in lme4's order."""
        out: dict[str, int] = {}
        for term in self.model.design.terms:
            out.setdefault(term.group, term.nlevels)
        return out

    @property
    def vc_blocks(self) -> list[tuple[str, list[str], np.ndarray]]:
        """Per term: (lme4 group label, column names, covariance matrix σ²TTᵀ)."""
        out = []
        s2 = self.sigma**2
        for term, label, th in zip(self.model.design.terms, self._term_labels, self._templates_lme4):
            out.append((label, list(term.cnames), s2 * (th @ th.T)))
        return out

    @cached_property
    def _templates_lme4(self) -> list[np.ndarray]:
        return self.model.cross.joined.by_model_term(self._factor.templates, 2)

    @property
    def varcorr(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr(fit))``: columns grp, var1, var2, vcov, sdcor."""
        rows = []
        for label, cnames, cov in self.vc_blocks:
            sd = np.sqrt(np.diag(cov))
            for i, name in enumerate(cnames):
                rows.append((label, name, None, cov[i, i], sd[i]))
            for j in range(len(cnames)):
                for i in range(j + 1, len(cnames)):
                    denom = sd[i] * sd[j]
                    cor = cov[i, j] / denom if denom > 0 else float("nan")
                    rows.append((label, cnames[j], cnames[i], cov[i, j], cor))
        rows.append(("Residual", None, None, self.sigma**2, self.sigma))
        return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])

    @cached_property
    def _b(self) -> list[np.ndarray]:
        """Conditional modes b = Λu per term (lme4 order), each (ℓ, S)."""
        b = [u @ T.T for u, T in zip(self._u, self._factor.templates)]
        return self.model.cross.joined.by_model_term(b, 1)

    @cached_property
    def _condvar(self) -> list[np.ndarray]:
        """Conditional covariance σ² Λ (ΛᵀZᵀWZΛ + I)⁻¹ Λᵀ per level, per term (lme4 order)."""
        f, cross = self._factor, self.model.cross
        s2 = self.sigma**2
        l0, S0, qr = cross.first.nlevels, cross.first.size, cross.rest_columns.random
        L00inv = batched_lower_inverse(f.L00)  # (ℓ, S, S)
        blocks0 = np.swapaxes(L00inv, 1, 2) @ L00inv
        engine = [blocks0]
        if qr:
            Dinv, info = lapack.dtrtri(f.Lrr[:qr, :qr], lower=1)
            if info != 0:
                raise np.linalg.LinAlgError(f"dtrtri failed inverting the rest's factor (info = {info})")
            # Eᵀ = blockdiag(L00⁻ᵀL00⁻¹Λ0ᵀ) R0ᵀ Λr Dinvᵀ, (q0, q_r): R0 is sparse, so the product
            # R0ᵀ(Λr Dinvᵀ) skips R0's zeros, where forming R0 densely took most of InstEval's 0.4 s.
            right = cross.scale_rows(Dinv.T, f.templates)  # Λr Dinvᵀ
            # blockdiag's blocks transposed: (T0 L00⁻ᵀ L00⁻¹)ᵀ = blocks0 T0ᵀ
            Et = np.matmul(blocks0 @ f.templates[0].T, (cross.R0.T @ right).reshape(l0, S0, qr))  # (ℓ, S, q_r)
            engine[0] = blocks0 + np.matmul(Et, np.swapaxes(Et, 1, 2))
            for sl, S, ell in cross.rest_columns.terms:
                cols = Dinv[:, sl].reshape(qr, ell, S)
                engine.append(np.einsum("kls,klt->lst", cols, cols))
        return cross.joined.by_model_term([s2 * (T @ E @ T.T) for T, E in zip(f.templates, engine)], 2)

    def ranef(self, condvar: bool = False) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects, one DataFrame per grouping factor.

        Terms on the same grouping factor are joined column-wise, as lme4 does.
        With ``condvar=True`` each frame carries ``attrs["condsd"]`` (conditional
        standard deviations, same shape) and ``attrs["condvar"]`` (a list of the
        per-term (ℓ, S, S) conditional covariance arrays).
        """
        values: dict[str, list[np.ndarray]] = {}
        columns: dict[str, list[str]] = {}
        condvars: dict[str, list[np.ndarray]] = {}
        levels: dict[str, list[str]] = {}
        for k, term in enumerate(self.model.design.terms):
            values.setdefault(term.group, []).append(self._b[k])
            columns.setdefault(term.group, []).extend(term.cnames)
            condvars.setdefault(term.group, []).append(self._condvar[k] if condvar else None)
            levels[term.group] = term.levels
        out: dict[str, pd.DataFrame] = {}
        for group, blocks in values.items():
            index = pd.Index(levels[group], name=group)
            frame = pd.DataFrame(np.hstack(blocks), index=index, columns=columns[group])
            if condvar:
                sd = np.hstack([np.sqrt(np.diagonal(cv, axis1=1, axis2=2)) for cv in condvars[group]])
                frame.attrs["condsd"] = pd.DataFrame(sd, index=index, columns=columns[group])
                frame.attrs["condvar"] = condvars[group]
            out[group] = frame
        return out

    def coef(self) -> dict[str, pd.DataFrame]:
        """Per-group coefficients: fixed effects plus that group's random effects (lme4's ``coef``)."""
        fe = self.fixef
        out = {}
        for group, re in self.ranef().items():
            missing = [c for c in re.columns if c not in fe.index]
            base = pd.concat([pd.Series(0.0, index=missing), fe]) if missing else fe
            frame = pd.DataFrame(np.tile(base.to_numpy(), (len(re), 1)), index=re.index, columns=base.index)
            for c in re.columns:
                frame[c] = frame[c] + re[c]
            out[group] = frame
        return out

    # -- fitted values --------------------------------------------------------
    @cached_property
    def fittedvalues(self) -> pd.Series:
        """Fitted values Xβ̂ + Zb̂ + offset, indexed like the rows used."""
        d = self.model.design
        eta = d.X @ self._beta
        for term, b in zip(d.terms, self._b):
            eta = eta + np.einsum("ns,ns->n", term.z, b[term.codes])
        if d.offset is not None:
            eta = eta + d.offset
        return pd.Series(eta, index=d.rows)

    @property
    def resid(self) -> pd.Series:
        """Response residuals y − fitted."""
        return pd.Series(self.model.design.y, index=self.model.design.rows) - self.fittedvalues

    @property
    def scaled_resid(self) -> np.ndarray:
        """Pearson residuals divided by σ̂, as lme4's summary uses them."""
        w = self.model.design.weights
        r = self.resid.to_numpy()
        if w is not None:
            r = r * np.sqrt(w)
        return r / self.sigma

    # -- diagnostics ----------------------------------------------------------
    @property
    def is_singular(self) -> bool:
        """lme4's ``isSingular``: some variance parameter θ within 1e-4 of zero."""
        return self.model.is_singular(self.optsummary.final)

    @property
    def convergence_messages(self) -> list[str]:
        """lme4's ``optinfo$conv$lme4$messages``: singular fit, gradient and Hessian checks."""
        return list(self._conv.messages)

    @property
    def converged(self) -> bool:
        return self.optsummary.code == 0 and self._conv.code == 0

    @property
    def optimizer_code(self) -> int:
        return self.optsummary.code

    @property
    def optimizer_name(self) -> str:
        return self.optsummary.optimizer

    @property
    def n_dropped(self) -> int:
        """Data rows left out of the fit: missing values (``na_action="omit"``) or zero weight.

        As with lme4's ``na.omit``, the summary does not mention them; ``nobs`` counts the rows fitted.
        """
        return self.model.design.n_dropped

    @property
    def fit_warnings(self) -> list[str]:
        """lme4's fit messages, in its order: the rank-deficiency drop, then checkScaleX's warning."""
        design = self.model.design
        messages = []
        if k := len(design.dropped_xnames):
            messages.append(
                f"fixed-effect model matrix is rank deficient so dropping {k} column{'s' if k > 1 else ''}"
                f" / coefficient{'s' if k > 1 else ''}"
            )
        if design.badly_scaled:
            messages.append(SCALE_MESSAGE)
        return messages

    # -- serialization --------------------------------------------------------
    # Pickling needs nothing special: the fit holds arrays, frames and plain
    # dataclasses.  to_dict is the language-neutral record of every estimate.
    def to_dict(self) -> dict:
        """Every estimate of the fit as plain Python values, ready for ``json.dumps``.

        Non-finite numbers (an undefined correlation, an unbounded θ) are
        ``None``, so that the result is strict JSON.  Names follow lme4
        (``fixef``, ``VarCorr``, ``ranef``, ``optinfo``).

        Examples
        --------
        >>> import json
        >>> import mixedfit as mf
        >>> fit = mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff"))
        >>> record = fit.to_dict()
        >>> round(record["beta"]["(Intercept)"], 4), record["ngroups"], record["varcorr"][0]["grp"]
        (1527.5, {'Batch': 6}, 'Batch')
        >>> json.loads(json.dumps(record, allow_nan=False))["nobs"]
        30
        """
        design, opt = self.model.design, self.optsummary
        vcov = self.vcov
        return {
            "formula": self.formula,
            "formula_written": design.formula_written,
            "reml": self.reml,
            "data_name": self.data_name,
            "weights_name": self.weights_name,
            "offset_name": self.offset_name,
            "nobs": int(self.nobs),
            "n_dropped": int(design.n_dropped),
            "ngroups": {g: int(k) for g, k in self.ngroups.items()},
            "theta": plain(self.theta.to_dict()),
            "beta": plain(self.fixef.to_dict()),
            "se": plain(self.bse.to_dict()),
            "vcov": {"names": list(vcov.index), "values": plain(vcov.to_numpy())},
            "dropped_xnames": list(design.dropped_xnames),
            "sigma": plain(self.sigma),
            "logLik": plain(self.llf),
            "df_logLik": int(self.npar),
            "AIC": plain(self.aic),
            "BIC": plain(self.bic),
            "deviance": plain(self.deviance),
            "REML_criterion": plain(self.reml_criterion),
            "df_resid": int(self.df_resid),
            "varcorr": plain(self.varcorr.to_dict(orient="records")),
            "ranef": self._ranef_record(),
            "optimizer": {
                "name": opt.optimizer, "code": int(opt.code), "message": opt.message,
                "feval": int(opt.feval), "fmin": plain(opt.fmin),
                "initial": plain(opt.initial), "final": plain(opt.final), "lower": plain(opt.lower),
                "xtol_abs": opt.xtol_abs, "ftol_abs": opt.ftol_abs, "xtol_rel": opt.xtol_rel,
                "maxeval": int(opt.maxeval),
                "gradient": plain(opt.gradient), "hessian": plain(opt.hessian),
            },
            "convergence": {
                "messages": self.convergence_messages, "code": int(self._conv.code),
                "converged": self.converged, "is_singular": self.is_singular,
            },
            "fit_warnings": self.fit_warnings,
        }

    def _ranef_record(self) -> dict:
        """Conditional modes and conditional SDs per grouping factor, as nested lists."""
        out = {}
        for group, frame in self.ranef(condvar=True).items():
            out[group] = {
                "levels": [str(v) for v in frame.index],
                "columns": list(frame.columns),
                "values": plain(frame.to_numpy()),
                "condsd": plain(frame.attrs["condsd"].to_numpy()),
            }
        return out


def plain(value):
    """*value* with numpy scalars and arrays made Python numbers and lists; NaN/inf as None."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value

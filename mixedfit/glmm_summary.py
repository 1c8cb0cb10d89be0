"""glmer's ``print(fit)`` and ``print(summary(fit))`` text, character for character.

Built from the linear summary's blocks (``mixedfit.summary``) with what
lme4 1.1-31 prints differently for a ``glmerMod``: the title names the
approximation, a ``Family:`` line follows it, the AIC table's ``deviance`` is
−2 logLik, the random-effects table has a ``Residual`` row only for families
with a scale, and the fixed effects have Wald ``z value`` and ``Pr(>|z|)``
columns (``t value`` with ``Pr(>|z|)`` for a family with a scale, as lme4
prints them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import rformat as rf
from . import summary as lmm

__all__ = ["GlmmSummary", "summary_text", "print_text"]


class _View:
    """The fit as the shared summary blocks read it: ``deviance`` is −2 logLik there."""

    def __init__(self, fit: Any):
        self._fit = fit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fit, name)

    @property
    def deviance(self) -> float:
        return self._fit.minus2llf

    @property
    def residual_row(self) -> bool:
        return self._fit.family.has_dispersion


def method_title(fit: Any) -> str:
    """lme4's ``methTitle`` for a GLMM (nAGQ = 0 is titled as quadrature, as lme4 does)."""
    how = ("Laplace Approximation" if fit.nagq == 1
           else f"Adaptive Gauss-Hermite Quadrature, nAGQ = {fit.nagq}")
    return f"Generalized linear mixed model fit by maximum likelihood ({how})"


def family_line(fit: Any) -> str:
    """``.prt.family``: `` Family: binomial  ( logit )``."""
    return f" Family: {fit.family.name}  ( {fit.family.link_name} )\n"


def fixef_block(fit: Any, digits: int = lmm.PRINT_DIGITS) -> str:
    """``Fixed effects:`` with Wald z tests, via ``printCoefmat``."""
    estimates = fit.fixef
    names = list(estimates.index)
    if not names:
        return ""
    stat = "t value" if fit.family.has_dispersion else "z value"
    # each a new Series (zvalues and pvalues build fixef and bse again): read once, not once per row
    rows = np.column_stack([estimates, fit.bse, fit.zvalues, fit.pvalues]).tolist()
    return "\nFixed effects:\n" + rf.print_coefmat(rows, names, ["Estimate", "Std. Error", stat, "Pr(>|z|)"],
                                                   digits=digits)


def summary_text(fit: Any) -> str:
    """``print(summary(fit))`` of a ``glmerMod``, lines joined by ``"\\n"``."""
    view, digits = _View(fit), lmm.PRINT_DIGITS
    parts = [
        lmm.title_block(method_title(fit), "glmerMod"),
        family_line(fit),
        lmm.call_block(view),
        "\n",
        lmm.aic_block(view, 1),
        "\n",
        lmm.residuals_block(fit.scaled_resid, digits),
        lmm.varcorr_block(view, digits, ("Variance", "Std.Dev.")),
        lmm.groups_block(view),
        fixef_block(fit, digits),
        lmm.correlation_block(view),
        lmm.fit_warnings_block(view),
        lmm.convergence_block(view, summary=False),
    ]
    return lmm.captured("".join(parts))


def print_text(fit: Any) -> str:
    """``print(fit)`` of a ``glmerMod``, lines joined by ``"\\n"``."""
    view, digits = _View(fit), lmm.PRINT_DIGITS
    parts = [
        lmm.title_block(method_title(fit), "glmerMod"),
        family_line(fit),
        lmm.call_block(view),
        lmm.aic_block(view, 4),
        lmm.varcorr_block(view, digits, ("Std.Dev.",)),
        lmm.groups_block(view),
        lmm.fixed_effects_print_block(fit, digits),
        lmm.fit_warnings_block(view),
        lmm.convergence_block(view, summary=True),
    ]
    return lmm.captured("".join(parts))


class GlmmSummary:
    """glmer's ``summary(fit)``: prints as lme4 prints it."""

    def __init__(self, fit: Any):
        self.fit = fit

    def __str__(self) -> str:
        return summary_text(self.fit)

    __repr__ = __str__

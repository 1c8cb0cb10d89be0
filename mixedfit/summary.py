"""lme4's ``print(fit)`` and ``print(summary(fit))`` text, character for character.

Each function here ports one of lme4 1.1-31's printing helpers
(``.prt.methTit``, ``.prt.call``, ``.prt.aictab``, ``.prt.resids``,
``formatVC``/``.prt.VC``, ``.prt.grps``, ``.prt.warn``,
``print.summary.merMod``, ``print.merMod``) on top of the R formatting
primitives in ``mixedfit.rformat``.  Each returns exactly what R writes
to the console, newlines included; ``summary_text`` and
``print_text`` then return what ``capture.output()`` collects, joined
with ``"\\n"``.

The ``fit`` argument is any object with these attributes: ``reml``,
``formula`` (deparsed as R prints it), ``data_name``, ``weights_name``,
``offset_name``, ``llf``, ``aic``, ``bic``, ``deviance``, ``df_resid``,
``reml_criterion``, ``scaled_resid``, ``vc_blocks``, ``sigma``, ``nobs``,
``ngroups``, ``fixef``, ``bse``, ``tvalues``, ``vcov``,
``convergence_messages``, ``optimizer_code``, ``optimizer_name``,
``fit_warnings``; for lmerTest output also ``coef_table(ddf=...)``.
Optional: ``optimizer_message`` (printed for a non-zero code) and
``optimizer_warnings``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import rformat as rf
from .inference.satterthwaite import normalize_ddf

__all__ = [
    "method_title", "title_block", "call_block", "aic_cells", "aic_block", "residual_cells",
    "residuals_block", "format_vc", "varcorr_block", "groups_block", "coef_matrix", "fixef_block",
    "correlation_cells", "correlation_block", "correlation_note", "fit_warnings_block",
    "convergence_block", "summary_text", "fixed_effects_print_block", "print_text", "lmertest_ddf",
    "PRINT_DIGITS", "captured",
]

#: ``max(3, getOption("digits") - 3)``: digits of lme4's print methods
PRINT_DIGITS = max(3, rf.R_DIGITS - 3)


def captured(text: str) -> str:
    """What ``paste(capture.output(...), collapse = "\\n")`` makes of console
    output: the lines, without the newline that ends the last one."""
    return text[:-1] if text.endswith("\n") else text


def lmertest_ddf(ddf: str | None) -> str | None:
    """lmerTest's name for a ``ddf`` method; ``None`` for plain lme4 output
    (``None`` or ``"lme4"``).  Raises ModelSpecError for an unknown method."""
    method = None if ddf is None else normalize_ddf(ddf)
    return None if method == "lme4" else method


# --------------------------------------------------------------------------
# header
# --------------------------------------------------------------------------
def method_title(fit: Any, ddf: str | None = None) -> str:
    """lme4's ``methTitle()``, extended as lmerTest's summary does.

    ``paste("maximum likelihood", NULL)`` leaves a trailing space, hence the
    two spaces before ``['lmerMod']`` in ML fits.
    """
    title = "Linear mixed model fit by " + ("REML" if fit.reml else "maximum likelihood ")
    key = lmertest_ddf(ddf)
    if key is not None:
        title += f". t-tests use {key}'s method"
    return title


def title_block(title: str, cls: str) -> str:
    """``.prt.methTit``: title and class, wrapped when over 80 columns."""
    if len(title) + 5 + len(cls) > rf.R_WIDTH:
        lines = rf.strwrap(title, width=rf.R_WIDTH - 2, exdent=2)
        return rf.cat_fill([lines, " [", cls, "]"], sep="")
    return f"{title} ['{cls}']\n"


def call_block(fit: Any, formula: str | None = None) -> str:
    """``.prt.call``: the Formula, Data, Weights and Offset lines.

    ``formula`` (default ``fit.formula``) is the deparsed formula; one that
    R's ``deparse()`` splits over several strings is passed as those strings
    joined by newlines.
    """
    deparsed = fit.formula if formula is None else formula
    out = rf.cat_fill(["Formula:", deparsed.split("\n")])
    for label, value in (
        ("   Data:", fit.data_name),
        ("Weights:", fit.weights_name),
        (" Offset:", fit.offset_name),
    ):
        if value is not None:
            out += rf.cat_fill([label, value])
    return out


def aic_cells(fit: Any, digits: int) -> tuple[list[str], list[str]]:
    """``.prt.aictab``'s names and formatted values: the REML criterion, or
    AIC, BIC, logLik, deviance and df.resid."""
    if fit.reml:
        crit = rf.r_round(float(fit.reml_criterion), digits)
        return ["REML criterion at convergence:"], [rf.cat_num(crit)]
    names = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    values = [fit.aic, fit.bic, fit.llf, fit.deviance, fit.df_resid]
    rounded = [rf.r_round(float(v), digits) for v in values]
    # format() the whole vector, then df.resid on its own (no decimals)
    text = rf.format_num(rounded)
    text[-1] = rf.format_num(rounded[-1:])[0]
    return names, text


def aic_block(fit: Any, digits: int) -> str:
    """``.prt.aictab``: the REML criterion, or the AIC/BIC/logLik table."""
    names, text = aic_cells(fit, digits)
    if fit.reml:
        return rf.cat_fill(names + text)
    return rf.print_named_vector(text, names)


def residual_cells(scaled_resid: Any, digits: int) -> tuple[list[str], list[str]]:
    """``.prt.resids``' quantile names and their values, formatted as ``print()`` does."""
    q = rf.zapsmall(rf.quantile7(np.asarray(scaled_resid, dtype=float)), digits + 1)
    return ["Min", "1Q", "Median", "3Q", "Max"], rf.format_num(q, digits=digits)


def residuals_block(scaled_resid: Any, digits: int) -> str:
    """``.prt.resids``: quantiles of the scaled residuals."""
    names, text = residual_cells(scaled_resid, digits)
    return "Scaled residuals: \n" + rf.print_named_vector(text, names) + "\n"


# --------------------------------------------------------------------------
# random effects
# --------------------------------------------------------------------------
def _block_sd_corr(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standard deviations and correlations of one covariance block, as
    lme4's ``mkVarCorr`` computes them (NaN where a standard deviation is 0)."""
    cov = np.atleast_2d(np.asarray(cov, dtype=float))
    sd = np.sqrt(np.diag(cov))
    with np.errstate(divide="ignore", invalid="ignore"):
        # t(cc / stddev) / stddev, in R's order of operations
        corr = (cov / sd[:, None]).T / sd[:, None]
    return sd, corr


def format_vc(
    fit: Any, digits: int = max(3, rf.R_DIGITS - 2), comp: tuple[str, ...] = ("Std.Dev.",)
) -> tuple[list[list[str]], list[str]]:
    """lme4's ``formatVC``: the random-effects table as a character matrix.

    Parameters
    ----------
    fit : fitted model
        Uses ``vc_blocks`` and ``sigma``.
    digits : int
        Significant digits for variances and standard deviations.
    comp : tuple of str
        Columns to show, among ``"Variance"`` and ``"Std.Dev."``.

    Returns
    -------
    rows, col_names
        Matrix rows (lists of cells) and column headers.
    """
    groups, names, sds, corrs = [], [], [], []
    for label, cnames, cov in fit.vc_blocks:
        sd, corr = _block_sd_corr(cov)
        groups += [label] + [""] * (len(cnames) - 1)
        names += list(cnames)
        sds += list(sd)
        corrs.append(corr)
    if getattr(fit, "residual_row", True):  # a binomial or Poisson GLMM has no residual variance
        groups.append("Residual")
        names.append("")
        sds.append(float(fit.sigma))
    columns = [groups, names]
    col_names = ["Groups", "Name"]
    for what in ("Variance", "Std.Dev."):
        if what in comp:
            vals = [s * s for s in sds] if what == "Variance" else sds
            columns.append(rf.format_num(vals, digits=digits))
            col_names.append(what)
    rows = [list(r) for r in zip(*columns)]
    maxlen = max(c.shape[0] for c in corrs) if corrs else 1
    if maxlen > 1:
        corr_rows = _corr_columns(corrs, maxlen, max(2, digits - 2))
        corr_rows += [[""] * (maxlen - 1)] * (len(rows) - len(corr_rows))
        rows = [r + c for r, c in zip(rows, corr_rows)]
        col_names += ["Corr"] + [""] * (maxlen - 2)
    return rows, col_names


def _corr_columns(corrs: list[np.ndarray], maxlen: int, dig: int) -> list[list[str]]:
    """formatVC's correlation columns: each block's lower triangle, rounded
    and formatted over the whole block, padded to ``maxlen - 1`` columns."""
    out = []
    for corr in corrs:
        n = corr.shape[0]
        cells = rf.format_num([rf.r_round(v, dig) for v in corr.ravel(order="F")], nsmall=dig)
        mat = np.array(cells, dtype=object).reshape((n, n), order="F")
        for i in range(n):
            row = [mat[i, j] if i > j else "" for j in range(n)] + [""] * (maxlen - n)
            out.append(row[: maxlen - 1])
    return out


def varcorr_block(fit: Any, digits: int, comp: tuple[str, ...]) -> str:
    """``.prt.VC``: the "Random effects:" table."""
    rows, col_names = format_vc(fit, digits, comp)
    return "Random effects:\n" + rf.print_char_matrix(rows, [""] * len(rows), col_names)


def groups_block(fit: Any) -> str:
    """``.prt.grps``: ``Number of obs: 180, groups:  Subject, 18``."""
    groups = "; ".join(f"{name}, {int(n)}" for name, n in fit.ngroups.items())
    return rf.cat_fill([f"Number of obs: {int(fit.nobs)}, groups: ", groups])


# --------------------------------------------------------------------------
# fixed effects
# --------------------------------------------------------------------------
def coef_matrix(fit: Any, ddf: str | None = None) -> tuple[list[list[float]], list[str], list[str]]:
    """The coefficient table of ``summary()``: rows, row names, column names.

    lme4 gives Estimate, Std. Error and t value; with a ``ddf`` method the
    table is ``fit.coef_table(ddf=ddf)`` (lmerTest's, with df and
    ``Pr(>|t|)``).
    """
    if lmertest_ddf(ddf) is not None:
        table = fit.coef_table(ddf=ddf)
        return table.to_numpy(dtype=float).tolist(), list(table.index), list(table.columns)
    estimates, errors = fit.fixef, fit.bse  # each a new Series: read once, not once per row
    rows = np.column_stack([estimates, errors, estimates / errors]).tolist()
    return rows, list(estimates.index), ["Estimate", "Std. Error", "t value"]


def fixef_block(fit: Any, digits: int = PRINT_DIGITS, ddf: str | None = None) -> str:
    """``Fixed effects:`` of the summary, via ``printCoefmat``."""
    rows, names, cols = coef_matrix(fit, ddf)
    if not rows:
        return ""
    return "\nFixed effects:\n" + rf.print_coefmat(rows, names, cols, digits=digits)


def correlation_cells(fit: Any) -> tuple[list[list[str]], list[str], list[str]] | None:
    """The ``Correlation of Fixed Effects:`` matrix: rows (lower triangle),
    row names and column names; ``None`` unless 1 < p <= 12.

    Abbreviated row names (``minlength = 11``) and column names
    (``minlength = 6``) as lme4 prints them.
    """
    names = list(fit.fixef.index)
    p = len(names)
    if p <= 1 or p > rf.COR_MAX:
        return None
    v = np.asarray(fit.vcov, dtype=float)
    # Matrix's corMatrix coercion: Diagonal(1/sd) %*% V %*% Diagonal(1/sd)
    inv = 1.0 / np.sqrt(np.diag(v))
    corr = v * inv[:, None] * inv[None, :]
    cells = rf.format_num([rf.r_round(x, 3) for x in corr.ravel(order="F")], nsmall=3)
    mat = np.array(cells, dtype=object).reshape((p, p), order="F")
    rows = [[mat[i, j] if i > j else "" for j in range(p - 1)] for i in range(1, p)]
    return rows, rf.abbreviate(names, 11)[1:], rf.abbreviate(names, 6)[:-1]


def correlation_block(fit: Any) -> str:
    """``Correlation of Fixed Effects:``, lower triangle, when 1 < p <= 12."""
    cells = correlation_cells(fit)
    if cells is None:
        return ""
    return "\nCorrelation of Fixed Effects:\n" + rf.print_char_matrix(*cells)


def correlation_note(p: int, name: str = "summary(fit)") -> str:
    """The message lme4 writes to stderr (not stdout, so not part of
    ``summary_text``) instead of a correlation matrix when p > 12.

    ``name`` is the deparsed argument of ``print()``; lme4 replaces it by
    ``"...."`` when 32 characters or longer.
    """
    if len(name) >= 32:
        name = "...."
    return (
        f"\nCorrelation matrix not shown by default, as p = {p} > {rf.COR_MAX}.\n"
        f"Use print({name}, correlation=TRUE)  or\n"
        f"    vcov({name})        if you need it\n\n"
    )


# --------------------------------------------------------------------------
# warnings
# --------------------------------------------------------------------------
def fit_warnings_block(fit: Any) -> str:
    """``fit warnings:`` and the design-matrix messages (rank deficiency)."""
    msgs = list(fit.fit_warnings)
    if not any(msgs):
        return ""
    return "fit warnings:\n" + "".join(m + "\n" for m in msgs)


def convergence_block(fit: Any, summary: bool) -> str:
    """``.prt.warn``: the optimizer code and lme4's convergence messages.

    Printed only when the code is positive or there are messages or
    optimizer warnings; ``summary=True`` gives ``print()``'s one-line form.
    """
    code = int(fit.optimizer_code)
    msgs = list(fit.convergence_messages)
    warnings = list(getattr(fit, "optimizer_warnings", None) or [])
    if not (code > 0 or msgs or warnings):
        return ""
    detail = getattr(fit, "optimizer_message", None)
    status = "(OK)" if code == 0 else (f"({detail})" if detail is not None else "")
    convmsg = f"optimizer ({fit.optimizer_name}) convergence code: {code} {status}"
    if summary:
        counts = f"; {len(warnings)} optimizer warnings; {len(msgs)} lme4 warnings"
        return f"{convmsg} {counts} \n"
    return "\n".join([convmsg, *msgs, *warnings]) + "\n\n"


# --------------------------------------------------------------------------
# the two reports
# --------------------------------------------------------------------------
def summary_text(fit: Any, ddf: str | None = None, formula: str | None = None) -> str:
    """``print(summary(fit))`` as lme4 (or lmerTest, with ``ddf``) prints it.

    Parameters
    ----------
    fit : fitted model
    ddf : {None, "Satterthwaite", "Kenward-Roger", "lme4"}
        With a method (any case), lmerTest's summary: its title, class and
        the coefficient table from ``fit.coef_table(ddf=ddf)``.
    formula : str, optional
        Deparsed formula for the ``Formula:`` line instead of ``fit.formula``.
        lmerTest prints the formula as the user wrote it, where lme4 prints
        it after expanding ``||`` into separate terms.

    Returns
    -------
    str
        The printed lines joined by ``"\\n"`` (``capture.output`` style).
        lme4's stderr note for p > 12 is not included; see
        ``correlation_note``.
    """
    digits = PRINT_DIGITS
    cls = "lmerMod" if lmertest_ddf(ddf) is None else "lmerModLmerTest"
    parts = [
        title_block(method_title(fit, ddf), cls),
        call_block(fit, formula),
        "\n",
        aic_block(fit, 1),
        "\n",
        residuals_block(fit.scaled_resid, digits),
        varcorr_block(fit, digits, ("Variance", "Std.Dev.")),
        groups_block(fit),
        fixef_block(fit, digits, ddf),
        correlation_block(fit),
        fit_warnings_block(fit),
        convergence_block(fit, summary=False),
    ]
    return captured("".join(parts))


def fixed_effects_print_block(fit: Any, digits: int = PRINT_DIGITS) -> str:
    """``print.merMod``'s ``Fixed Effects:`` named vector (or its word for none)."""
    names = list(fit.fixef.index)
    if not names:
        return "No fixed effect coefficients\n"
    values = rf.format_num([float(v) for v in fit.fixef], digits=digits)
    return "Fixed Effects:\n" + rf.print_named_vector(values, names, gap=2)


def print_text(fit: Any) -> str:
    """``print(fit)`` (lme4's ``print.merMod``), lines joined by ``"\\n"``."""
    digits = PRINT_DIGITS
    parts = [
        title_block(method_title(fit), "lmerMod"),
        call_block(fit),
        aic_block(fit, 4),
        varcorr_block(fit, digits, ("Std.Dev.",)),
        groups_block(fit),
        fixed_effects_print_block(fit, digits),
        fit_warnings_block(fit),
        convergence_block(fit, summary=True),
    ]
    return captured("".join(parts))

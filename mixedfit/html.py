"""lme4's summary as HTML tables, for JupyterLab, VS Code and other notebooks.

Every block of the text summary (``mixedfit.summary.summary_text``) becomes
a small table, and every number is the very string the text prints: the cells
come from the same formatting helpers (``aic_cells``,
``format_vc``, ``mixedfit.rformat.format_coefmat``,
...), stripped of the padding that aligns them in a console.  Styling is a
few inline attributes, which notebook front ends keep when they sanitize
untrusted output (a ``<style>`` element they may drop); colours are left to
the front end's theme, so light and dark themes both read well.

Examples
--------
>>> import mixedfit as mf
>>> fit = mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff"), data_name="Dyestuff")
>>> page = summary_html(fit)
>>> page.startswith('<div class="mixedfit-summary"')
True
>>> "1527.50" in page and "REML criterion at convergence" in page
True
"""

from __future__ import annotations

from html import escape
from typing import Any, Sequence

from . import rformat as rf
from . import summary as sm

__all__ = ["summary_html"]

_BOX = "font-size:0.9em;line-height:1.35;margin:0.3em 0"
_TABLE = "border-collapse:collapse;margin:0.2em 0 0.9em 0;border:none"
_CAPTION = "caption-side:top;text-align:left;font-weight:bold;padding:0 0 0.2em 0"
_CELL = "padding:0.1em 0.7em;border:none;white-space:pre;font-variant-numeric:tabular-nums"
_HEAD = _CELL + ";border-bottom:1px solid currentColor;font-weight:bold"
_ROW_HEAD = _CELL + ";font-weight:bold"


def _cell(tag: str, text: str, align: str, colspan: int = 1, style: str = _CELL) -> str:
    span = f' colspan="{colspan}"' if colspan > 1 else ""
    return f'<{tag}{span} style="{style};text-align:{align}">{escape(text.strip())}</{tag}>'


def _table(
    caption: str | None,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    left: int = 0,
    spans: Sequence[int] | None = None,
) -> str:
    """A table whose first ``left`` columns are text (left-aligned), the rest numbers.

    ``spans`` gives each header cell's ``colspan`` (lme4's ``Corr`` heads
    several columns).
    """
    spans = list(spans) if spans is not None else [1] * len(header)
    heads, col = [], 0
    for name, span in zip(header, spans):
        heads.append(_cell("th", name, "left" if col < left else "right", span, _HEAD))
        col += span
    body = [
        "<tr>" + "".join(_cell("td", c, "left" if j < left else "right") for j, c in enumerate(row)) + "</tr>"
        for row in rows
    ]
    cap = f'<caption style="{_CAPTION}">{escape(caption)}</caption>' if caption else ""
    return (
        f'<table style="{_TABLE}">{cap}<thead><tr>{"".join(heads)}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table>'
    )


def _paragraph(text: str, bold: bool = False) -> str:
    weight = ";font-weight:bold" if bold else ""
    return f'<p style="margin:0.2em 0{weight}">{escape(text)}</p>'


# -- the blocks, in the text summary's order ---------------------------------------------
def _title(fit: Any, ddf: str | None) -> str:
    cls = "lmerMod" if sm.lmertest_ddf(ddf) is None else "lmerModLmerTest"
    return _paragraph(f"{sm.method_title(fit, ddf).rstrip()} ['{cls}']", bold=True)


def _call(fit: Any, formula: str | None) -> str:
    deparsed = (fit.formula if formula is None else formula).replace("\n", " ")
    rows = [("Formula:", deparsed)]
    for label, value in (("Data:", fit.data_name), ("Weights:", fit.weights_name), ("Offset:", fit.offset_name)):
        if value is not None:
            rows.append((label, value))
    body = "".join(
        f'<tr>{_cell("th", k, "left", style=_ROW_HEAD)}{_cell("td", v, "left")}</tr>' for k, v in rows
    )
    return f'<table style="{_TABLE}"><tbody>{body}</tbody></table>'


def _criteria(fit: Any) -> str:
    names, values = sm.aic_cells(fit, 1)
    if fit.reml:
        return _paragraph(f"{names[0]} {values[0]}")
    return _table(None, names, [values])


def _residuals(fit: Any) -> str:
    names, values = sm.residual_cells(fit.scaled_resid, sm.PRINT_DIGITS)
    return _table("Scaled residuals", names, [values])


def _random_effects(fit: Any) -> str:
    rows, col_names = sm.format_vc(fit, sm.PRINT_DIGITS, ("Variance", "Std.Dev."))
    ncorr = len(col_names) - col_names.index("Corr") if "Corr" in col_names else 0
    header = col_names[: len(col_names) - ncorr] + (["Corr"] if ncorr else [])
    spans = [1] * (len(header) - 1) + [ncorr or 1]
    groups = sm.groups_block(fit).replace("\n", " ").strip()
    return _table("Random effects", header, rows, left=2, spans=spans) + _paragraph(groups)


def _fixed_effects(fit: Any, ddf: str | None) -> str:
    values, names, cols = sm.coef_matrix(fit, ddf)
    if not values:
        return ""
    cells, labels, stars = rf.format_coefmat(values, cols, sm.PRINT_DIGITS)
    rows = [[name, *row] for name, row in zip(names, cells)]
    table = _table("Fixed effects", ["", *labels], rows, left=1)
    legend = _paragraph("Signif. codes:  " + rf.SIGNIF_LEGEND) if stars else ""
    return table + legend


def _correlation(fit: Any) -> str:
    cells = sm.correlation_cells(fit)
    if cells is None:
        return ""
    rows, row_names, col_names = cells
    return _table(
        "Correlation of Fixed Effects", ["", *col_names], [[n, *r] for n, r in zip(row_names, rows)], left=1
    )


def _warnings(fit: Any) -> str:
    text = sm.fit_warnings_block(fit) + sm.convergence_block(fit, summary=False)
    if not text:
        return ""
    return f'<pre style="margin:0.2em 0;white-space:pre-wrap">{escape(text.rstrip())}</pre>'


def summary_html(fit: Any, ddf: str | None = None, formula: str | None = None) -> str:
    """lme4's (or, with ``ddf``, lmerTest's) ``summary(fit)`` as an HTML fragment.

    Parameters
    ----------
    fit : MixedResults
        Any object ``mixedfit.summary.summary_text`` accepts.
    ddf : {None, "satterthwaite", "kenward-roger", "lme4"}
        As for ``summary_text``: with a method, the
        fixed-effects table has lmerTest's df and ``Pr(>|t|)`` columns.
    formula : str, optional
        Deparsed formula for the ``Formula:`` row instead of ``fit.formula``.

    Returns
    -------
    str
        One ``<div>`` holding the summary's blocks: title, call, fit
        criteria, scaled residuals, random effects and group counts, fixed
        effects, their correlations and any warnings.

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
    >>> page = summary_html(fit, ddf="satterthwaite")
    >>> "3.26e-06" in page and "Satterthwaite" in page
    True
    """
    blocks = [
        _title(fit, ddf),
        _call(fit, formula),
        _criteria(fit),
        _residuals(fit),
        _random_effects(fit),
        _fixed_effects(fit, ddf),
        _correlation(fit),
        _warnings(fit),
    ]
    return f'<div class="mixedfit-summary" style="{_BOX}">{"".join(blocks)}</div>'

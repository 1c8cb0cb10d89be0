"""The Python peers of mixedfit, one runner each, as ``worker.py peer NAME`` runs them.

* **lme-python** (``lme_python.lmer`` / ``glmer``; Rust, lme-rs),
* **mixedlm** (``mixedlm.lmer`` / ``glmer``; Python with a Rust core),
* **interlace-lme** (``interlace.fit`` / ``glmer``; Python, fixed formula plus a list
  of random-effect terms).

Every runner takes the lme4 formula of the case (or the case's ``peer_formula``),
fits it end to end from the pandas data frame with the peer's defaults, and
returns the elapsed time, the objective on lme4's scale, θ and the peer's own
evaluation count where it reports one.

Objective (``scale`` says which lme4 quantity it is comparable with):

* linear mixed models: the REML criterion (REML) or the deviance −2 log L (ML), from
  the peer's REML criterion or −2 × its log-likelihood (``scale="crit"``); the
  worker also evaluates mixedfit's objective at the peer's θ (``objective_at_theta``)
  as a check of the constants;
* GLMMs: −2 log L of the Laplace approximation (``scale="dev"``, lme4's
  ``-2 * logLik(fit)``), except lme-python, whose reported log-likelihood is
  lme4's optimised Laplace objective ``ldL2 + sum of deviance residuals + |u|²``
  (``scale="laplace"``; it leaves out the saturated model's log-likelihood, which does not
  depend on the parameters); for the others the worker also finds glmer's −2 log L at the
  peer's θ, β refitted (``objective_at_theta``): their optimum is judged by the higher of the two.
"""

from __future__ import annotations

import gc
import re
import time
import warnings
from typing import Any, Callable

import numpy as np

PEERS = ("lme_python", "mixedlm", "interlace")
DISTRIBUTIONS = {"lme_python": "lme-python", "mixedlm": "mixedlm", "interlace": "interlace-lme"}
MODULES = {"lme_python": "lme_python", "mixedlm": "mixedlm", "interlace": "interlace"}

_BAR = re.compile(r"\(([^()|]*(?:\([^()]*\)[^()|]*)*)(\|\|?)([^()]*)\)")


def split_bars(formula: str) -> tuple[str, list[tuple[str, str, str]]]:
    """Split an lme4 formula into its fixed part and its ``(effects | group)`` terms.

    >>> split_bars("y ~ x + (x|g) + (1|h)")
    ('y ~ x', [('x', '|', 'g'), ('1', '|', 'h')])
    """
    bars = [(m.group(1).strip(), m.group(2), m.group(3).strip()) for m in _BAR.finditer(formula)]
    fixed = _BAR.sub("", formula)
    fixed = re.sub(r"\+\s*(?=\+|$)", "", re.sub(r"\s+", " ", fixed)).strip()
    fixed = re.sub(r"~\s*\+", "~", fixed).rstrip("+ ").strip()
    return fixed, bars


def interlace_terms(formula: str) -> tuple[str, list[str]]:
    """lme4 formula -> interlace's fixed formula and random list.

    interlace reads ``(x | g)`` as a slope without intercept, lme4 as intercept
    plus slope, so the implicit intercept is written out; its fixed formula is
    Python's (``I(age**2)``, not ``I(age^2)``).

    >>> interlace_terms("y ~ x + (x|school/class)")
    ('y ~ x', ['(1 + x | school/class)'])
    """
    fixed, bars = split_bars(formula)
    random = []
    for effects, pipe, group in bars:
        terms = [t.strip() for t in effects.split("+")]
        if not ({"0", "1", "-1"} & set(terms)) and not any(t.startswith("-") for t in terms):
            terms = ["1"] + terms
        random.append(f"({' + '.join(terms)} {pipe} {group})")
    return fixed.replace("^", "**"), random


# --------------------------------------------------------------------------- runners
def _weights(data, spec: dict) -> np.ndarray | None:
    col = spec.get("weights")
    return None if col is None else data[col].to_numpy(dtype=float)


def _lme_python(data, spec: dict) -> dict:
    import lme_python

    f, fam, w = spec["formula"], spec.get("family"), _weights(data, spec)
    if fam is None:
        fit = lme_python.lmer(f, data, reml=spec["reml"])
        obj = fit.reml_criterion if spec["reml"] else -2.0 * fit.log_likelihood
        scale = "crit"
    else:
        fit = (lme_python.glmer(f, data, fam) if w is None
               else lme_python.glmer_weighted(f, data, fam, weights=list(w)))
        obj, scale = -2.0 * fit.log_likelihood, "laplace"
    return {"objective": obj, "scale": scale, "theta": list(fit.theta or []),
            "feval": fit.iterations, "converged": fit.converged,
            "warnings": list((fit.diagnostics or {}).get("warnings") or [])}


def _mixedlm(data, spec: dict) -> dict:
    import mixedlm
    from mixedlm import families

    f, fam, w = spec["formula"], spec.get("family"), _weights(data, spec)
    if fam is None:
        fit = mixedlm.lmer(f, data, REML=spec["reml"], weights=w)
        obj = fit.REMLcrit() if spec["reml"] else -2.0 * float(fit.logLik())
    else:
        family = {"binomial": families.Binomial, "poisson": families.Poisson}[fam]()
        fit = mixedlm.glmer(f, data, family=family, weights=w)
        obj = -2.0 * float(fit.logLik())
    feval = getattr(fit, "function_evals", None)
    return {"objective": float(obj), "scale": "crit" if fam is None else "dev",
            "theta": np.asarray(fit.theta, float).tolist(), "feval": feval,
            "converged": bool(getattr(fit, "converged", True)),
            "message": str(getattr(fit, "message", ""))}


def _interlace(data, spec: dict) -> dict:
    import interlace

    fixed, random = interlace_terms(spec["formula"])
    fam, w = spec.get("family"), _weights(data, spec)
    if fam is None:
        fit = interlace.fit(fixed, data, random=random, method="REML" if spec["reml"] else "ML",
                            weights=w)
    else:
        fit = interlace.glmer(fixed, data, family=fam, random=random, weights=w)
    # llf is the REML log-likelihood for REML fits (checked on sleepstudy: −2 llf = lme4's REMLcrit)
    return {"objective": -2.0 * float(fit.llf), "scale": "crit" if fam is None else "dev",
            "theta": np.asarray(getattr(fit, "theta", []), float).tolist(), "feval": None,
            "converged": bool(getattr(fit, "converged", True))}


RUNNERS: dict[str, Callable[[Any, dict], dict]] = {
    "lme_python": _lme_python, "mixedlm": _mixedlm, "interlace": _interlace,
}


def fit_peer(name: str, frame, spec: dict) -> dict:
    """Time one end-to-end fit of peer ``name`` on a fresh copy of ``frame``."""
    data = frame.copy(deep=True)  # untimed: no caching by object identity across runs
    gc.collect()
    with warnings.catch_warnings(record=True) as wlist:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        try:
            out = RUNNERS[name](data, spec)
        except ValueError as exc:
            if "not implemented" in str(exc):  # lme-python's word for a model it cannot write
                return {"ok": False, "na": f"n/a: {exc}", "error": f"ValueError: {exc}"}
            raise
        elapsed = time.perf_counter() - t0
    caught = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in wlist})
    out["warnings"] = sorted(set(out.get("warnings", [])) | set(caught))
    out.update(ok=True, elapsed=elapsed)
    if out.get("theta") and (spec.get("family") is None or out.get("scale") == "dev"):
        out["objective_at_theta"] = mixedfit_objective_at(spec, frame, out["theta"])
    return out


def _tril_row_to_col(k: int) -> list[int]:
    """Positions, in a row-major lower triangle of size k, of lme4's column-major entries."""
    row = [(i, j) for i in range(k) for j in range(i + 1)]
    col = [(i, j) for j in range(k) for i in range(j, k)]
    return [row.index(ij) for ij in col]


def theta_orderings(theta: list[float], sizes: list[int]) -> list[np.ndarray]:
    """The peer's θ rearranged into lme4's order under every plausible convention.

    lme4 orders the terms by decreasing number of levels and stores each block's
    lower triangle by columns; a peer may keep the formula's order and/or go by rows.
    So: every permutation of the term blocks (up to 4 terms), each with the blocks
    read as they are or row-major.

    >>> [o.tolist() for o in theta_orderings([1, 2, 3, 4], [1, 2])]
    [[1.0, 2.0, 3.0, 4.0], [4.0, 1.0, 2.0, 3.0]]
    """
    from itertools import permutations

    lengths = [k * (k + 1) // 2 for k in sizes]
    if sum(lengths) != len(theta) or len(sizes) > 4:
        return [np.asarray(theta, float)] if sum(lengths) == len(theta) else []
    out = []
    for order in permutations(range(len(sizes))):  # order[i]: the peer's block for lme4's term i
        peer_sizes = [sizes[i] for i in order]
        starts = np.cumsum([0] + [k * (k + 1) // 2 for k in peer_sizes])
        peer_blocks = {i: np.asarray(theta[starts[n]:starts[n + 1]], float) for n, i in enumerate(order)}
        if any(peer_blocks[i].size != lengths[i] for i in range(len(sizes))):
            continue
        for by_rows in (False, True):
            blocks = [peer_blocks[i][_tril_row_to_col(sizes[i])] if by_rows else peer_blocks[i]
                      for i in range(len(sizes))]
            cand = np.concatenate(blocks)
            if not any(np.array_equal(cand, o) for o in out):
                out.append(cand)
    return out


def mixedfit_objective_at(spec: dict, frame, theta: list[float]) -> float | None:
    """mixedfit's objective (lme4's) at the peer's θ, untimed: a check of the peer's constant.

    The peers' θ need not be in lme4's order, so this is the lowest value over
    :func:`theta_orderings`; every other ordering gives a value above the
    optimum, so it equals the peer's objective exactly when their constants agree.
    For a GLMM it is the lowest Laplace deviance over β at that θ, as glmer's
    deviance function evaluates it (:func:`_glmm_objective_at`): a peer that
    reports less evaluates the approximation otherwise, and did not find a
    lower point of glmer's function.
    """
    try:
        if spec.get("family") is not None:
            return _glmm_objective_at(spec, frame, theta)
        from mixedfit.model import MixedModel
        from mixedfit.terms import build_design

        model = MixedModel(build_design(spec["lme4_formula"], frame), reml=spec["reml"])
        sizes = [t.size for t in model.design.terms]
        vals = [model.objective(t) for t in theta_orderings(theta, sizes)]
        vals = [v for v in vals if np.isfinite(v)]
        return float(min(vals)) if vals else None
    except Exception:  # a check only; the fit itself is already recorded
        return None


def _glmm_objective_at(spec: dict, frame, theta: list[float]) -> float | None:
    """The least −2 log L (Laplace) over β at the peer's θ, as glmer's deviance function gives it.

    glmer's function starts PIRLS, at every (θ, β), where its first stage
    ended, and its value moves with that start: at glmer's optimum on cbpp,
    mixedfit's model gives 184.053133 (glmer's value, to 1e-11) after its own
    fit, which starts it there too, and 184.052602 started afresh.  The peers
    report θ but not always β in lme4's column order, so β is found again:
    BFGS on that model's deviance at this θ, from mixedfit's β̂.
    """
    from scipy.optimize import minimize

    import mixedfit as mf

    fit = mf.mixed(spec["lme4_formula"], frame, family=spec["family"])
    model, start = fit.model, np.asarray(fit.fixef, float)
    vals = []
    for t in theta_orderings(theta, [term.size for term in model.design.terms]):
        found = minimize(lambda beta: model.objective(np.concatenate([t, beta])), start, method="BFGS",
                         options={"gtol": 1e-8})
        if np.isfinite(found.fun):
            vals.append(float(found.fun))
    return min(vals) if vals else None

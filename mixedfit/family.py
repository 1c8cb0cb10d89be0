"""GLM families and links as R defines them (``binomial()``, ``poisson()``, ...).

A ``Family`` carries what a GLMM fit needs from R's family object: the
link (``linkfun``, ``linkinv``, ``mu_eta``), the ``variance`` function, the
deviance residuals (``dev_resids``) and ``aic`` (−2 log-likelihood, from
which glmer's ``logLik`` comes), with the bounds lme4's C++ code puts on
them (``glmFamily.cpp``: μ kept inside (ε, 1 − ε) for the logit, probit and
cloglog links, ``exp`` at least ε for the log link).

Examples
--------
>>> f = family("binomial", link="probit")
>>> f
binomial(link = "probit")
>>> float(f.linkinv(np.array([0.0]))[0])
0.5
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .distributions import special
from .errors import DataError, MixedFitWarning, ModelSpecError, warn

__all__ = ["Family", "Link", "family", "is_linear_model", "FAMILY_LINKS"]

_EPS = np.finfo(float).eps

Array = np.ndarray


@dataclass(frozen=True)
class Link:
    """A link function g with its inverse and dμ/dη."""

    name: str
    linkfun: Callable[[Array], Array]
    linkinv: Callable[[Array], Array]
    mu_eta: Callable[[Array], Array]
    #: dμ/dη from μ = linkinv(η) where that needs no exp of η again (log: μ; logit: μ(1 − μ))
    mu_eta_from_mu: Callable[[Array], Array] | None = None


def _clamp01(p: Array) -> Array:
    return np.clip(p, _EPS, 1.0 - _EPS)


def _cloglog_inv(eta: Array) -> Array:
    return -np.expm1(-np.exp(eta))


def _cloglog_mu_eta(eta: Array) -> Array:
    with np.errstate(over="ignore"):
        return np.maximum(np.exp(eta - np.exp(eta)), _EPS)


def _logit_mu_eta(eta: Array) -> Array:
    """R's dlogis(η), at least ε: e/(1 + e)² with e = exp(−|η|)."""
    e = np.exp(-np.abs(eta))
    return np.maximum(e / (1.0 + e) ** 2, _EPS)


def _cauchy() -> Any:
    """scipy's standard Cauchy distribution, imported where a cauchit link first needs it.

    scipy.stats takes about a quarter of a second to import, which a fit without this link never pays.
    """
    from scipy.stats import cauchy

    return cauchy


_LINKS: dict[str, Link] = {
    "logit": Link("logit", lambda mu: special().logit(mu), lambda eta: _clamp01(special().expit(eta)),
                  _logit_mu_eta, lambda mu: np.maximum(mu * (1.0 - mu), _EPS)),
    "probit": Link("probit", lambda mu: special().ndtri(mu),
                   lambda eta: np.minimum(special().ndtr(eta), 1.0 - _EPS),
                   lambda eta: np.exp(-eta**2 / 2.0) / np.sqrt(2.0 * np.pi)),
    "cauchit": Link("cauchit", lambda mu: _cauchy().ppf(mu),
                    lambda eta: np.minimum(_cauchy().cdf(eta), 1.0 - _EPS),
                    lambda eta: _cauchy().pdf(eta)),
    "cloglog": Link("cloglog", lambda mu: np.log(-np.log1p(-mu)),
                    lambda eta: _clamp01(_cloglog_inv(eta)), _cloglog_mu_eta),
    "log": Link("log", np.log, lambda eta: np.maximum(np.exp(eta), _EPS),
                lambda eta: np.maximum(np.exp(eta), _EPS), lambda mu: mu),
    "identity": Link("identity", lambda mu: np.asarray(mu, float), lambda eta: np.asarray(eta, float),
                     lambda eta: np.ones_like(eta, dtype=float)),
    "inverse": Link("inverse", lambda mu: 1.0 / mu, lambda eta: 1.0 / eta, lambda eta: -1.0 / eta**2),
    "sqrt": Link("sqrt", np.sqrt, lambda eta: eta**2, lambda eta: 2.0 * eta),
    "1/mu^2": Link("1/mu^2", lambda mu: 1.0 / mu**2, lambda eta: 1.0 / np.sqrt(eta),
                   lambda eta: -1.0 / (2.0 * eta**1.5)),
}

#: Each family's links, R's default first (as ``binomial()``, ``poisson()``, ... accept them).
FAMILY_LINKS: dict[str, tuple[str, ...]] = {
    "binomial": ("logit", "probit", "cauchit", "log", "cloglog"),
    "poisson": ("log", "identity", "sqrt"),
    "Gamma": ("inverse", "identity", "log"),
    "inverse.gaussian": ("1/mu^2", "inverse", "identity", "log"),
    "gaussian": ("identity", "log", "inverse"),
}


def _ylogy(y: Array, mu: Array) -> Array:
    """y log(y/μ), 0 where y = 0 (lme4's ``Y_log_Y``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return special().xlogy(y, y / mu)


def _binomial_dev(y: Array, mu: Array, wt: Array) -> Array:
    return 2.0 * wt * (_ylogy(y, mu) + _ylogy(1.0 - y, 1.0 - mu))


def _binomial_aic_at(y: Array, n: Array, wt: Array) -> Callable[[Array, float], float]:
    """R's binomial ``aic`` as a function of μ (and the deviance), its μ-free part computed once."""
    m = n if np.any(n > 1) else wt
    successes, trials = np.rint(m * y), np.rint(m)
    failures = trials - successes
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(trials <= 0, 0.0, wt / np.where(trials <= 0, 1.0, trials))
        # R's dbinom(log = TRUE), as scipy's binom.logpmf computes it, without its checks
        gammaln = special().gammaln
        choose = gammaln(trials + 1.0) - gammaln(successes + 1.0) - gammaln(failures + 1.0)
    used = scale != 0
    if np.all(trials == m) and np.all(np.abs(m * y - successes) <= 1e-9 * np.maximum(m, 1.0)):
        # whole trials and successes: −2 log L = deviance + terms free of μ
        with np.errstate(divide="ignore", invalid="ignore"):
            saturated = 2.0 * wt * (special().xlogy(y, y) + special().xlogy(1.0 - y, 1.0 - y))
        return _plus_constant(float(-2.0 * np.sum(scale[used] * choose[used]) - np.sum(saturated)))

    def aic(mu: Array, dev: float) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            logpmf = choose + special().xlogy(successes, mu) + special().xlog1py(failures, -mu)
        return float(-2.0 * np.sum(scale[used] * logpmf[used]))

    return aic


def _plus_constant(constant: float) -> Callable[[Array, float], float]:
    """An ``aic`` that is the deviance plus a constant: −2 log L = Σ dev.resids + what is free of μ."""
    return lambda mu, dev: dev + constant


def _binomial_aic(y: Array, n: Array, mu: Array, wt: Array, dev: float) -> float:
    return _binomial_aic_at(y, n, wt)(mu, dev)


def _poisson_dev(y: Array, mu: Array, wt: Array) -> Array:
    return 2.0 * wt * (_ylogy(y, mu) - (y - mu))


def _poisson_aic_at(y: Array, n: Array, wt: Array) -> Callable[[Array, float], float]:
    """R's Poisson ``aic`` as a function of μ; log y! computed once (−inf at a non-integer y, as dpois)."""
    log_factorial = np.where(y == np.rint(y), special().gammaln(y + 1.0), np.inf)
    if np.all(np.isfinite(log_factorial)):  # −2 log L = deviance + terms free of μ
        return _plus_constant(float(-2.0 * np.sum(wt * (special().xlogy(y, y) - y - log_factorial))))

    def aic(mu: Array, dev: float) -> float:
        return float(-2.0 * np.sum((special().xlogy(y, mu) - mu - log_factorial) * wt))

    return aic


def _poisson_aic(y: Array, n: Array, mu: Array, wt: Array, dev: float) -> float:
    return _poisson_aic_at(y, n, wt)(mu, dev)


def _gamma_dev(y: Array, mu: Array, wt: Array) -> Array:
    # μ < 0 (an inverse link's η < 0 in a PIRLS step that step-halving then shortens) gives NaN, quietly
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(y == 0, 0.0, np.log(np.where(y == 0, 1.0, y / mu)))
    return -2.0 * wt * (logs - (y - mu) / mu)


def _gamma_aic_from(dev: float, weight_sum: float, wlogy_sum: float) -> float:
    """R's Gamma ``aic``, −2 Σ w log dgamma(y, a, scale = μφ) + 2 with φ = dev/Σw and a = 1/φ, from totals.

    Per row log dgamma = a log(y/μ) − a log φ − a y/μ − log Γ(a) − log y, and
    Σ w (log(y/μ) − y/μ) = −dev/2 − Σw (the deviance's definition): so the
    deviance, Σw and Σ w log y are all it reads, sums a pass over parts of
    the rows adds up.
    """
    disp = dev / weight_sum
    a = 1.0 / disp
    return float(weight_sum * (1.0 + 2.0 * a * (1.0 + np.log(disp)) + 2.0 * special().gammaln(a))
                 + 2.0 * wlogy_sum + 2.0)


def _gamma_aic(y: Array, n: Array, mu: Array, wt: Array, dev: float) -> float:
    return _gamma_aic_from(dev, *_dispersion_totals(y, wt))


def _invgauss_dev(y: Array, mu: Array, wt: Array) -> Array:
    return wt * (y - mu) ** 2 / (y * mu**2)


def _invgauss_aic_from(dev: float, weight_sum: float, wlogy_sum: float) -> float:
    """R's inverse Gaussian ``aic`` from the deviance, Σw and Σ w log y."""
    return float(weight_sum * (np.log(dev / weight_sum * 2.0 * np.pi) + 1.0) + 3.0 * wlogy_sum + 2.0)


def _invgauss_aic(y: Array, n: Array, mu: Array, wt: Array, dev: float) -> float:
    return _invgauss_aic_from(dev, *_dispersion_totals(y, wt))


def _dispersion_totals(y: Array, wt: Array) -> tuple[float, float]:
    """Σw and Σ w log y: what a dispersion family's ``aic`` reads of the data besides the deviance."""
    return float(np.sum(wt)), float(np.sum(wt * np.log(y)))


def _gaussian_dev(y: Array, mu: Array, wt: Array) -> Array:
    return wt * (y - mu) ** 2


def _gaussian_aic(y: Array, n: Array, mu: Array, wt: Array, dev: float) -> float:
    nobs = y.size
    return float(nobs * (np.log(2.0 * np.pi * dev / nobs) + 1.0) + 2.0 - np.sum(np.log(wt)))


_DISTRIBUTIONS = {
    "binomial": (lambda mu: np.maximum(mu * (1.0 - mu), _EPS), _binomial_dev, _binomial_aic),
    "poisson": (lambda mu: np.asarray(mu, float), _poisson_dev, _poisson_aic),
    "Gamma": (lambda mu: mu**2, _gamma_dev, _gamma_aic),
    "inverse.gaussian": (lambda mu: mu**3, _invgauss_dev, _invgauss_aic),
    "gaussian": (lambda mu: np.ones_like(mu, dtype=float), _gaussian_dev, _gaussian_aic),
}


_AIC_AT = {"binomial": _binomial_aic_at, "poisson": _poisson_aic_at}
_AIC_FROM_TOTALS = {"Gamma": _gamma_aic_from, "inverse.gaussian": _invgauss_aic_from}


@dataclass(frozen=True)
class Family:
    """An R family object: a distribution and a link.

    Attributes
    ----------
    name : str
        R's family name (``"binomial"``, ``"poisson"``, ``"Gamma"``,
        ``"inverse.gaussian"``, ``"gaussian"``).
    link : Link
        The link function.
    """

    name: str
    link: Link

    @property
    def link_name(self) -> str:
        return self.link.name

    @property
    def has_dispersion(self) -> bool:
        """Whether the family has a scale parameter σ (lme4's ``useSc``)."""
        return self.name not in ("binomial", "poisson")

    def linkfun(self, mu: Array) -> Array:
        return self.link.linkfun(np.asarray(mu, float))

    def linkinv(self, eta: Array) -> Array:
        return self.link.linkinv(np.asarray(eta, float))

    def mu_eta(self, eta: Array) -> Array:
        return self.link.mu_eta(np.asarray(eta, float))

    def mu_eta_at(self, eta: Array, mu: Array) -> Array:
        """dμ/dη at η, given μ = linkinv(η): from μ where the link allows (no second exp of η).

        For the log link it is μ itself, as ``mu_eta`` computes it; for the
        logit μ(1 − μ), which R's ``dlogis(η)`` equals to rounding (both at
        least ε).

        Examples
        --------
        >>> f = family("binomial")
        >>> eta = np.array([-2.0, 0.0, 3.0])
        >>> bool(np.allclose(f.mu_eta_at(eta, f.linkinv(eta)), f.mu_eta(eta), rtol=1e-14))
        True
        """
        from_mu = self.link.mu_eta_from_mu
        return self.mu_eta(eta) if from_mu is None else from_mu(np.asarray(mu, float))

    def variance(self, mu: Array) -> Array:
        return _DISTRIBUTIONS[self.name][0](np.asarray(mu, float))

    def dev_resids(self, y: Array, mu: Array, wt: Array) -> Array:
        """Squared deviance residuals, one per observation (R's ``dev.resids``)."""
        return _DISTRIBUTIONS[self.name][1](y, mu, wt)

    def dev_resids_at(self, y: Array, wt: Array) -> Callable[[Array], Array]:
        """``dev_resids`` as a function of μ, for fixed y and weights.

        A 0/1 binomial response needs one logarithm per observation:
        ``−2 w log(μ)`` where y = 1, ``−2 w log(1 − μ)`` where y = 0 (R's
        ``y log(y/μ) + (1 − y) log((1 − y)/(1 − μ))`` at those y).
        """
        y, wt = np.asarray(y, float), np.asarray(wt, float)
        if self.name == "binomial" and np.all((y == 0) | (y == 1)):
            ones, scale = y == 1, -2.0 * wt  # the same products, the first made once
            return lambda mu: scale * np.log(np.where(ones, mu, 1.0 - mu))
        return lambda mu: self.dev_resids(y, mu, wt)

    def aic_at(self, y: Array, n: Array, wt: Array) -> Callable[[Array, float], float]:
        """``aic`` as a function of μ and the deviance at μ (Σ ``dev_resids``), for fixed y, n
        and weights.

        What depends on the data alone (log-binomial coefficients, log y!)
        is computed once: PIRLS evaluates the likelihood at many μ.  For
        whole binomial trials and successes, and for whole Poisson counts,
        −2 log L is the deviance plus that constant, and costs nothing more.
        """
        at = _AIC_AT.get(self.name)
        if at is not None:
            return at(y, n, wt)
        if self.name in _AIC_FROM_TOTALS:  # Σw and Σ w log y once
            totals = self.dispersion_totals(y, wt)
            return lambda mu, dev: self.aic_from_totals(dev, totals)
        return lambda mu, dev: self.aic(y, n, mu, wt, dev)

    def dispersion_totals(self, y: Array, wt: Array) -> np.ndarray:
        """Σw and Σ w log y: with the deviance, all a Gamma or inverse Gaussian ``aic`` reads
        (sums over rows: those of parts of the rows add up, ``aic_from_totals``)."""
        return np.array(_dispersion_totals(np.asarray(y, float), np.asarray(wt, float)))

    def aic_from_totals(self, dev: float, totals: np.ndarray) -> float:
        """A Gamma or inverse Gaussian ``aic`` from the deviance and ``dispersion_totals``.

        Examples
        --------
        >>> f = family("Gamma")
        >>> y, mu, wt = np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 3.0]), np.ones(3)
        >>> dev = float(np.sum(f.dev_resids(y, mu, wt)))
        >>> from scipy import stats
        >>> phi = dev / 3  # R's aic: −2 Σ log dgamma(y, 1/φ, scale = μφ) + 2
        >>> r = -2.0 * np.sum(stats.gamma.logpdf(y, 1.0 / phi, scale=mu * phi)) + 2.0
        >>> bool(np.isclose(f.aic_from_totals(dev, f.dispersion_totals(y, wt)), r, rtol=1e-13))
        True
        """
        if self.name not in _AIC_FROM_TOTALS:
            raise ModelSpecError(f"the {self.name} family's aic is not a function of totals")
        return _AIC_FROM_TOTALS[self.name](dev, *totals)

    def aic(self, y: Array, n: Array, mu: Array, wt: Array, dev: float) -> float:
        """R's ``family$aic``: −2 log-likelihood (plus 2 for a dispersion family)."""
        return _DISTRIBUTIONS[self.name][2](y, n, mu, wt, dev)

    def mustart(self, y: Array, weights: Array) -> Array:
        """The starting μ of R's ``family$initialize``."""
        if self.name == "binomial":
            return (weights * y + 0.5) / (weights + 1.0)
        if self.name == "poisson":
            return y + 0.1
        return np.asarray(y, float)

    def initialize(self, response: Array, weights: Array | None,
                   label: str = "y") -> tuple[Array, Array | None, Array | None]:
        """The response, binomial ``n`` and weights as R's ``family$initialize`` leaves them.

        ``response`` is one column (0/1, a proportion, counts, positive
        values) or, for the binomial, two (``cbind(successes, failures)``);
        ``weights`` are the prior weights (None: all one).  Returns
        ``(y, n, weights)``: for a two-column binomial response y is the
        proportion of successes, n the trials and the weights the prior
        weights times n; n is None for the other families.  Never modifies
        its arguments.

        Raises
        ------
        DataError
            Where R's ``initialize`` stops: a binomial response outside
            [0, 1], negative counts, a non-positive Gamma or inverse
            Gaussian response, a two-column response for another family.

        Warns
        -----
        MixedFitWarning
            Where R warns: non-integer binomial successes or counts,
            non-integer Poisson counts.

        Examples
        --------
        >>> y, n, w = family("binomial").initialize(np.array([[2.0, 3.0], [0.0, 4.0]]), None)
        >>> y.tolist(), n.tolist(), w.tolist()
        ([0.4, 0.0], [5.0, 4.0], [5.0, 4.0])
        """
        y = np.asarray(response, float)
        prior = np.ones(y.shape[0]) if weights is None else np.asarray(weights, float)
        if y.ndim == 2 and self.name == "binomial":
            return self._binomial_matrix(y, prior, label)
        if y.ndim == 2:
            raise DataError(f"the response '{label}' has {y.shape[1]} columns: only the binomial "
                            "family takes a two-column cbind(successes, failures) response")
        if self.name == "binomial":
            if np.any((y < 0) | (y > 1)):
                raise DataError(f"the binomial response '{label}' has values outside [0, 1] "
                                f"(e.g. {_first(y[(y < 0) | (y > 1)])}); give 0/1, a two-level "
                                "factor, a proportion with the trials as weights, or "
                                "cbind(successes, failures) (R: y values must be 0 <= y <= 1)")
            successes = prior * y
            if np.any(np.abs(successes - np.rint(successes)) > 1e-3):
                warn("non-integer #successes in a binomial glm!", MixedFitWarning)
            return y, np.ones_like(y), prior
        self._check_range(y, label)
        return y, None, prior

    def _binomial_matrix(self, y: Array, prior: Array, label: str) -> tuple[Array, Array, Array]:
        if y.shape[1] != 2:
            raise DataError(f"the binomial response '{label}' has {y.shape[1]} columns; "
                            "cbind(successes, failures) has two")
        if np.any(y < 0):
            raise DataError(f"the binomial response '{label}' has negative counts "
                            f"(e.g. {_first(y[y < 0])}): cbind(successes, failures) needs "
                            "counts >= 0")
        n = y[:, 0] + y[:, 1]
        if np.any(np.abs(n - np.rint(n)) > 1e-3):
            warn("non-integer counts in a binomial glm!", MixedFitWarning)
        with np.errstate(invalid="ignore", divide="ignore"):
            proportion = np.where(n == 0, 0.0, y[:, 0] / np.where(n == 0, 1.0, n))
        return proportion, n, prior * n

    def _check_range(self, y: Array, label: str) -> None:
        """R's ``initialize`` checks of a Poisson, Gamma or inverse Gaussian response."""
        if self.name == "poisson":
            if np.any(y < 0):
                raise DataError(f"the Poisson response '{label}' has negative values (e.g. "
                                f"{_first(y[y < 0])}); R: negative values not allowed for the "
                                "'Poisson' family")
            fractional = y[np.abs(y - np.rint(y)) > 0]
            if fractional.size:
                # R's dpois() warns so, once per value, and the log-likelihood is -Inf.
                warn(f"non-integer x = {fractional[0]:f}", MixedFitWarning)
        elif self.name == "Gamma" and np.any(y <= 0):
            raise DataError(f"the Gamma response '{label}' has values <= 0 (e.g. {_first(y[y <= 0])}); "
                            "R: non-positive values not allowed for the 'Gamma' family")
        elif self.name == "inverse.gaussian" and np.any(y <= 0):
            raise DataError(f"the inverse Gaussian response '{label}' has values <= 0 (e.g. "
                            f"{_first(y[y <= 0])}); R: positive values only are allowed for the "
                            "'inverse.gaussian' family")

    def __repr__(self) -> str:
        return f'{self.name}(link = "{self.link.name}")'

    def __reduce__(self):
        # The links hold lambdas: pickle the family by its names.
        return (family, (self.name, self.link.name))


def _first(values: Array) -> str:
    return f"{values.reshape(-1)[0]:g}"


def is_linear_model(family_: str | Family) -> bool:
    """Whether ``family=`` names the linear mixed model (R's ``gaussian()``: identity link only).

    Raises ``ModelSpecError`` for the gaussian family with another link.
    """
    fam = family(family_)
    if fam.name != "gaussian":
        return False
    if fam.link_name != "identity":
        raise ModelSpecError(f"the gaussian family with the {fam.link_name} link is not implemented; "
                             "gaussian() with the identity link is the linear mixed model")
    return True


def family(name: str | Family, link: str | None = None) -> Family:
    """R's family object by name: ``family("binomial")``, ``family("Gamma", link="log")``.

    Parameters
    ----------
    name : str or Family
        ``"binomial"``, ``"poisson"``, ``"Gamma"``, ``"inverse.gaussian"`` or
        ``"gaussian"`` (R's spelling); a ``Family`` is returned as it is.
    link : str, optional
        The link (R's names); default the family's canonical one.

    Raises
    ------
    ModelSpecError
        For a family or link R does not have, listing the valid ones.

    Examples
    --------
    >>> family("poisson").link_name
    'log'
    >>> family("Gamma", link="log")
    Gamma(link = "log")
    """
    if isinstance(name, Family):
        if link is not None and link != name.link_name:
            return family(name.name, link)
        return name
    if not isinstance(name, str) or name not in FAMILY_LINKS:
        known = ", ".join(f"'{k}'" for k in FAMILY_LINKS)
        hint = " (R spells it 'Gamma')" if isinstance(name, str) and name.lower() == "gamma" else ""
        raise ModelSpecError(f"unknown family {name!r}{hint}; the families are {known}")
    links = FAMILY_LINKS[name]
    chosen = links[0] if link is None else link
    if chosen not in links:
        raise ModelSpecError(f"link \"{chosen}\" not available for {name} family; available links "
                             "are " + ", ".join(f"'{k}'" for k in links))
    return Family(name, _LINKS[chosen])

"""The predictive distribution an estimator gives for each galaxy and parameter."""

from numbers import Real

import numpy as np
from scipy.special import erf
from scipy.stats import norm

from ..catalog._targets import PHYSICAL_RANGES

__all__ = ["ONE_SIGMA", "FAMILIES", "SersicDistribution", "check_coverage",
           "family_multiplier"]

#: Probability mass within ±1σ of a Gaussian: the coverage of a "1σ error".
ONE_SIGMA = float(erf(1 / np.sqrt(2)))

#: Distribution families of the likelihood heads: ``(half-width of the
#: central interval of a coverage, in scales; standard deviation, in scales)``.
FAMILIES = {
    "gaussian": (lambda coverage: norm.ppf(0.5 + coverage / 2), 1.0),
    "laplace": (lambda coverage: -np.log1p(-coverage), np.sqrt(2.0)),
}


def check_coverage(coverage, what="coverage"):
    """Return ``coverage`` as a float after checking it lies in (0, 1).

    Parameters
    ----------
    coverage : float
        Probability content of a central interval.
    what : str, optional
        Name used in the error message.

    Returns
    -------
    coverage : float

    Raises
    ------
    ValueError
        If ``coverage`` is not a number strictly between 0 and 1.

    Examples
    --------
    >>> from astromorphnet.uncertainty import check_coverage
    >>> check_coverage(0.95)
    0.95
    """
    if (isinstance(coverage, bool) or not isinstance(coverage, Real)
            or not 0 < coverage < 1):
        raise ValueError(f"{what} must be a probability strictly between 0 and 1 "
                         f"(e.g. 0.68 or 0.95); got {coverage!r}")
    return float(coverage)


def family_multiplier(family, coverage):
    """Half-width, in scale units, of a family's central interval.

    Parameters
    ----------
    family : {"gaussian", "laplace"}
        Distribution family (`FAMILIES`).
    coverage : float
        Probability content of the interval.

    Returns
    -------
    multiplier : float

    Examples
    --------
    >>> from astromorphnet.uncertainty import ONE_SIGMA, family_multiplier
    >>> round(family_multiplier("gaussian", ONE_SIGMA), 6)
    1.0
    """
    return float(FAMILIES[family][0](check_coverage(coverage)))


class SersicDistribution:
    """Per-galaxy predictive distributions of the Sérsic parameters.

    Returned by the estimators' ``predict_distribution``.  Each galaxy and
    parameter has a location and a scale in the space the network regresses
    (standardised, log10 for ``log_targets``); intervals are built there and
    mapped to catalog units, so those of ``r_eff`` and ``sersic_n`` are
    asymmetric.  Without calibration the interval is the family's own
    (Gaussian or Laplace: the network's likelihood head); after
    ``calibrate`` its half-width is the conformal quantile of the calibration
    galaxies' normalised residuals.

    Parameters
    ----------
    targets : tuple of str
        Parameter names, in column order.
    loc, scale : `~numpy.ndarray`
        Shape ``(n, len(targets))``: location and (positive) scale in the
        regressed space.
    family : {"gaussian", "laplace"}
        Family of the uncalibrated distribution (`FAMILIES`).
    decode : callable
        Maps regressed-space values ``(n, len(targets))`` to catalog units,
        monotonically increasing in each column.
    calibration : `ConformalCalibration`, optional
        The estimator's calibration; intervals then come from it.
    weights : `~numpy.ndarray`, optional
        Per-galaxy density-ratio weights, for a weighted calibration.

    Attributes
    ----------
    targets : tuple of str
        Parameter names.

    Examples
    --------
    >>> import numpy as np
    >>> from astromorphnet.uncertainty import SersicDistribution
    >>> dist = SersicDistribution(("ellipticity",), np.array([[0.0]]), np.array([[1.0]]),
    ...                           "gaussian", lambda z: 0.3 + 0.1 * z)
    >>> [round(float(v[0, 0]), 3) for v in dist.interval(0.95)]
    [0.104, 0.496]
    >>> round(float(dist.error[0, 0]), 3)
    0.1
    """

    def __init__(self, targets, loc, scale, family, decode, calibration=None, weights=None):
        self.targets = tuple(targets)
        self._loc = np.asarray(loc, float)
        self._scale = np.asarray(scale, float)
        self._family = family
        self._decode = decode
        self._calibration = calibration
        self._weights = weights

    def __len__(self):
        return len(self._loc)

    @property
    def calibrated(self):
        """Whether the intervals come from a conformal calibration."""
        return self._calibration is not None

    @property
    def median(self):
        """Point estimates (the distributions' centres), in catalog units."""
        return self._decode(self._loc)

    def interval(self, coverage):
        """Central interval of probability ``coverage`` for every galaxy and parameter.

        Parameters
        ----------
        coverage : float
            Probability content, in (0, 1).

        Returns
        -------
        lo, hi : `~numpy.ndarray`
            Shape ``(n, len(targets))``, catalog units, within each
            parameter's `~astromorphnet.catalog.PHYSICAL_RANGES` (a bound
            beyond cannot hold the truth, so cutting it keeps the coverage).
            A calibration with too few galaxies for ``coverage`` gives
            infinite bounds (honestly: n calibration galaxies support
            coverages up to n / (n + 1)).

        Raises
        ------
        ValueError
            If ``coverage`` is not in (0, 1).
        """
        if self._calibration is not None:
            half = self._calibration.multiplier(coverage, self._weights)
        else:
            half = family_multiplier(self._family, coverage)
        with np.errstate(invalid="ignore", over="ignore"):
            lo = self._decode(self._loc - half * self._scale)
            hi = self._decode(self._loc + half * self._scale)
        low, high = (np.array([PHYSICAL_RANGES[t][i] for t in self.targets]) for i in (0, 1))
        return np.clip(lo, low, high), np.clip(hi, low, high)

    @property
    def error(self):
        """1σ errors: half the width of the central 68.27 % interval, in catalog units."""
        lo, hi = self.interval(ONE_SIGMA)
        return (hi - lo) / 2

    def __repr__(self):
        state = "calibrated" if self.calibrated else f"uncalibrated {self._family}"
        return (f"<{type(self).__name__}: {len(self)} galaxies, {', '.join(self.targets)}; "
                f"{state}>")

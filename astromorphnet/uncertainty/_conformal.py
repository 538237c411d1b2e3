"""Conformal calibration of predictive intervals, plain and under covariate shift."""

import warnings

import numpy as np
from astropy.utils.exceptions import AstropyUserWarning
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ._distribution import check_coverage

__all__ = ["ConformalCalibration", "DomainDensityRatio", "MIN_EFFECTIVE_SIZE"]

#: Below this effective number of calibration galaxies (Kish's
#: ``(Σw)² / Σw²``), a weighted calibration warns: its quantiles are noisy.
MIN_EFFECTIVE_SIZE = 50


class ConformalCalibration:
    """Split-conformal scaling of predictive intervals, one per parameter.

    The nonconformity score of a calibration galaxy is its normalised
    residual ``|y - loc| / scale`` in the regressed space; the interval of
    coverage ``c`` is ``loc ± q · scale`` with ``q`` the ``⌈(n + 1) c⌉``-th
    smallest score, which covers at least ``c`` of new galaxies drawn like
    the calibration ones (Vovk et al. 2005).  With ``weights`` (density
    ratios target/source of the calibration galaxies) and a test galaxy's
    own weight, ``q`` is the weighted quantile of Tibshirani et al. (2019),
    valid under covariate shift.

    Parameters
    ----------
    scores : array-like of shape (n, n_targets)
        Normalised absolute residuals of the calibration galaxies.
    weights : array-like of shape (n,), optional
        Density-ratio weights of the calibration galaxies (weighted
        conformal prediction); None for exchangeable calibration galaxies.
    density_ratio : DomainDensityRatio, optional
        The model giving test galaxies their weights (kept with the
        calibration for prediction).

    Attributes
    ----------
    n_calibration : int
        Number of calibration galaxies.
    effective_size : float
        Kish's effective number of calibration galaxies (``n`` unweighted).

    Raises
    ------
    ValueError
        If ``scores`` is empty, not 2-D, or not finite and non-negative, or
        ``weights`` is malformed.

    Examples
    --------
    >>> import numpy as np
    >>> from astromorphnet.uncertainty import ConformalCalibration
    >>> cal = ConformalCalibration(np.arange(1.0, 100.0)[:, np.newaxis])
    >>> cal.multiplier(0.9)
    array([90.])
    """

    def __init__(self, scores, weights=None, density_ratio=None):
        scores = np.asarray(scores, float)
        if scores.ndim != 2 or not len(scores):
            raise ValueError(f"scores must have shape (n, n_targets) with n >= 1; got "
                             f"{scores.shape}")
        if not np.isfinite(scores).all() or (scores < 0).any():
            raise ValueError("scores must be finite and non-negative")
        order = np.argsort(scores, axis=0, kind="stable")
        self._sorted = np.take_along_axis(scores, order, axis=0)
        self._cumulative = None
        self.n_calibration = len(scores)
        self.effective_size = float(len(scores))
        if weights is not None:
            weights = np.asarray(weights, float)
            if weights.shape != (len(scores),) or not np.isfinite(weights).all() \
                    or (weights < 0).any() or not weights.any():
                raise ValueError(f"weights must be {len(scores)} finite non-negative numbers, "
                                 "not all zero")
            self._cumulative = np.cumsum(weights[order], axis=0)
            self.effective_size = float(weights.sum() ** 2 / (weights ** 2).sum())
        self.density_ratio = density_ratio

    @property
    def weighted(self):
        """Whether this is a weighted (covariate-shift) calibration."""
        return self._cumulative is not None

    def multiplier(self, coverage, test_weights=None):
        """Interval half-widths, in scale units, for a coverage.

        Parameters
        ----------
        coverage : float
            Probability content, in (0, 1).
        test_weights : array-like of shape (m,), optional
            Density-ratio weights of the test galaxies (needed, and only
            used, by a weighted calibration).

        Returns
        -------
        multiplier : `~numpy.ndarray`
            Shape ``(n_targets,)``, or ``(m, n_targets)`` when weighted;
            ``inf`` where the calibration galaxies are too few for
            ``coverage``.

        Raises
        ------
        ValueError
            If ``coverage`` is not in (0, 1), or a weighted calibration is
            given no test weights.
        """
        coverage = check_coverage(coverage)
        n = self.n_calibration
        padded = np.vstack([self._sorted, np.full((1, self._sorted.shape[1]), np.inf)])
        if self._cumulative is None:
            rank = int(np.ceil((n + 1) * coverage))
            return padded[min(rank, n + 1) - 1].copy()
        if test_weights is None:
            raise ValueError("a weighted calibration needs the test galaxies' weights")
        test_weights = np.asarray(test_weights, float)
        # The test point carries its own weight at an infinite score.
        threshold = coverage * (self._cumulative[-1] + test_weights[:, np.newaxis])
        index = np.column_stack([
            np.searchsorted(self._cumulative[:, j], threshold[:, j] * (1 - 1e-12))
            for j in range(self._sorted.shape[1])])
        return np.take_along_axis(padded, index, axis=0)

    def __repr__(self):
        kind = "weighted" if self.weighted else "split"
        return (f"<{type(self).__name__}: {kind} conformal, {self.n_calibration} galaxies "
                f"(effective {self.effective_size:.0f})>")


class DomainDensityRatio:
    """Density ratio target/source of galaxies' features, from a domain classifier.

    A logistic regression (on standardised features reduced by PCA) learns
    ``p = P(target | features)``; the ratio is ``p / (1 - p) · n_source /
    n_target``, the weight of weighted conformal prediction.  ``p`` is kept
    within ``[clip, 1 - clip]`` so one galaxy cannot take all the weight.

    Parameters
    ----------
    n_components : int, default=16
        PCA components of the features the classifier reads.
    clip : float, default=0.01
        Bound on the classifier's probabilities.
    random_state : int, `~numpy.random.RandomState` or None, default=None
        Seeds the PCA's randomised solver.

    Examples
    --------
    >>> import numpy as np
    >>> from astromorphnet.uncertainty import DomainDensityRatio
    >>> rng = np.random.default_rng(0)
    >>> ratio = DomainDensityRatio(n_components=2, random_state=0).fit(
    ...     rng.normal(0, 1, (500, 3)), rng.normal(1, 1, (500, 3)))
    >>> bool(ratio(np.full((1, 3), 2.0))[0] > ratio(np.full((1, 3), -1.0))[0])
    True
    """

    def __init__(self, n_components=16, clip=0.01, random_state=None):
        self.n_components = n_components
        self.clip = clip
        self.random_state = random_state

    def fit(self, source, target):
        """Learn the ratio from source and target features.

        Parameters
        ----------
        source, target : array-like of shape (n, n_features)
            Features of the two domains' galaxies.

        Returns
        -------
        self : DomainDensityRatio

        Raises
        ------
        ValueError
            If either domain has no galaxy.
        """
        source = np.asarray(source, float).reshape(len(source), -1)
        target = np.asarray(target, float).reshape(len(target), -1)
        if not len(source) or not len(target):
            raise ValueError("a density ratio needs galaxies of both domains")
        x = np.vstack([source, target])
        n_components = max(1, min(self.n_components, x.shape[1], len(x) - 1))
        self.classifier_ = make_pipeline(
            StandardScaler(), PCA(n_components, random_state=self.random_state),
            LogisticRegression(max_iter=1000))
        self.classifier_.fit(x, np.r_[np.zeros(len(source)), np.ones(len(target))])
        self.prior_ratio_ = len(source) / len(target)
        return self

    def __call__(self, features):
        """Density-ratio weights of galaxies.

        Parameters
        ----------
        features : array-like of shape (n, n_features)

        Returns
        -------
        weights : `~numpy.ndarray` of shape (n,)
        """
        features = np.asarray(features, float).reshape(len(features), -1)
        p = np.clip(self.classifier_.predict_proba(features)[:, 1], self.clip, 1 - self.clip)
        return p / (1 - p) * self.prior_ratio_


def warn_if_few(calibration, coverage=0.95):
    """Warn when a calibration has too few (effective) galaxies for ``coverage``."""
    needed = np.ceil(coverage / (1 - coverage))
    if calibration.weighted:
        needed = max(needed, MIN_EFFECTIVE_SIZE)
    if calibration.effective_size < needed:
        warnings.warn(
            f"calibration on {calibration.n_calibration} galaxies (effective "
            f"{calibration.effective_size:.1f}) is too few for reliable {coverage:.0%} "
            f"intervals (needs {needed:.0f}): some may be infinite, and the stated coverage "
            "holds only on average over calibration sets", AstropyUserWarning)

"""Label-free model selection for regression under covariate shift.

Both scorers estimate an estimator's error on the target domain from the
labelled source rows of a validation fold, each weighted by the density
ratio ``w(x) = p(target | x) / p(source | x)`` that a domain classifier
learns on that fold's source and target rows.  Target labels are never
read: the semi-supervised (unlabelled-target) path can be tuned with
`~sklearn.model_selection.GridSearchCV` honestly.
"""

import warnings
from numbers import Integral, Real

import numpy as np
from astropy.utils.exceptions import AstropyUserWarning
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metadata_routing import MetadataRequest

from ..catalog._targets import labels_to_array
from ..estimators._domains import check_sample_domain
from ..uncertainty._conformal import DomainDensityRatio

__all__ = ["ImportanceWeightedScorer", "DeepEmbeddedValidationScorer", "MIN_EFFECTIVE_SIZE"]

#: Below this effective number of weighted source rows (Kish's
#: ``(Σw)² / Σw²``), a score warns: the source rows that resemble the target
#: are too few for the estimate of the target error to be trusted.
MIN_EFFECTIVE_SIZE = 30


class _DomainShiftScorer(BaseEstimator):
    """Shared machinery: fold validation, features, density ratio, per-row loss."""

    _parameter_constraints = {
        "weight_clip": [Interval(Real, 0, 0.5, closed="neither")],
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "features": [StrOptions({"network", "input"})],
        "random_state": ["random_state"],
    }

    def __init__(self, *, weight_clip=0.01, n_components=16, features="network",
                 random_state=None):
        self.weight_clip = weight_clip
        self.n_components = n_components
        self.features = features
        self.random_state = random_state

    def _get_metadata_request(self):
        # Under metadata routing GridSearchCV & co. route sample_domain to the
        # scorer, as to skada's domain-aware scorers.  A class-level
        # __metadata_request__score is ignored by scikit-learn >= 1.9 on
        # classes without a ``score`` method, hence an explicit request.
        request = MetadataRequest(owner=self)
        request.score.add_request(param="sample_domain", alias=True)
        return request

    def __call__(self, estimator, X, y, sample_domain=None):
        """Score a fitted estimator on a validation fold (greater is better).

        Parameters
        ----------
        estimator : fitted regressor
            An astromorphnet estimator, any scikit-learn regressor whose
            ``predict`` returns an array shaped like ``y``, or a
            `~sklearn.pipeline.Pipeline` ending in either.
        X : cutouts or array-like
            The fold's rows of both domains.
        y : `~astropy.table.QTable` or array-like
            Labels, NaN on unlabelled (target) rows; target labels, where
            present, are ignored.
        sample_domain : array-like of int, optional
            Positive for source, negative for target rows.  Default: rows
            whose labels are all NaN are the target.

        Returns
        -------
        score : float
            Minus the estimated target-domain error (see the class).

        Raises
        ------
        ValueError
            If the fold has no labelled source row or no target row, ``y``
            does not have one row per cutout, or the estimator predicts
            non-finite values on source rows.
        """
        self._validate_params()
        predicted, labels, features = _predict_with_features(estimator, X, y, self.features)
        target = check_sample_domain(sample_domain, labels, require_both=False)
        source = ~target & np.isfinite(labels).all(axis=1)
        name = type(self).__name__
        if not source.any():
            raise ValueError(
                f"{name} needs labelled source rows in every validation fold; this fold has "
                f"none ({len(labels)} rows, {int(target.sum())} of them target): use a "
                "splitter that keeps both domains in each fold, e.g. StratifiedKFold on "
                "sample_domain")
        if not target.any():
            raise ValueError(
                f"{name} needs target rows (sample_domain < 0, or unlabelled rows) in every "
                f"validation fold; this fold has none ({len(labels)} source rows): use a "
                "splitter that keeps both domains in each fold, e.g. StratifiedKFold on "
                "sample_domain")
        true = labels[source]
        spread = true.var(axis=0)
        # A constant source label carries no scale: count its raw squared error.
        spread = np.where(spread > 0, spread, 1.0)
        loss = ((predicted[source] - true) ** 2 / spread).mean(axis=1)
        if not np.isfinite(loss).all():
            raise ValueError(f"{name}: the estimator predicted non-finite values on source "
                             "rows; no error can be estimated")
        self.density_ratio_ = DomainDensityRatio(
            n_components=self.n_components, clip=self.weight_clip,
            random_state=self.random_state).fit(features[source], features[target])
        weights = self.density_ratio_(features[source])
        self.effective_size_ = float(weights.sum() ** 2 / (weights ** 2).sum())
        if self.effective_size_ < MIN_EFFECTIVE_SIZE:
            warnings.warn(
                f"{name}: the density-ratio weights leave an effective {self.effective_size_:.1f} "
                f"of {int(source.sum())} source rows (fewer than {MIN_EFFECTIVE_SIZE}): few "
                "source rows resemble the target, so this score is noisy; use larger folds "
                "or a source closer to the target", AstropyUserWarning)
        return -self._risk(loss, weights)


class ImportanceWeightedScorer(_DomainShiftScorer):
    """Importance-weighted validation for regression, needing no target labels.

    The score of a fitted estimator on a validation fold is minus the
    self-normalised importance-weighted mean (Sugiyama et al. 2007) of its
    per-row loss on the fold's labelled source rows,

    ``score = -Σ w_i L_i / Σ w_i``,  ``L_i = mean_j (ŷ_ij - y_ij)² / var_j``,

    with ``var_j`` the variance of target ``j``'s source labels in the fold
    (so parameters in different units count alike) and ``w_i`` the density
    ratio target/source of row ``i`` (`~astromorphnet.uncertainty.DomainDensityRatio`,
    a logistic regression on the PCA of the estimator's network features,
    fitted on the fold's source vs target rows).  Under covariate shift it
    estimates the target-domain mean squared error in units of the source
    label variance: ``1 + score`` is roughly the target R² when target and
    source labels spread alike.  Greater is better, as scikit-learn expects.

    Use it as ``GridSearchCV(..., scoring=ImportanceWeightedScorer())`` with
    ``sklearn.set_config(enable_metadata_routing=True)``: the scorer requests
    ``sample_domain``, which GridSearchCV then splits with ``X``.

    Parameters
    ----------
    weight_clip : float, default=0.01
        Bound on the domain classifier's probabilities, in (0, 0.5): each
        weight lies within ``[c/(1-c), (1-c)/c]`` times ``n_source /
        n_target``, so one source row cannot take all the weight.
    n_components : int, default=16
        PCA components of the features the domain classifier reads.
    features : {"network", "input"}, default="network"
        What the domain classifier reads: the estimator's network features
        (its ``"features"`` layer), or the flattened (standardised) input.
        Estimators without a network (plain scikit-learn regressors) always
        use the input.  In a `~sklearn.pipeline.Pipeline`, the input is what
        its final step receives.  Features of a domain-adversarial network are made
        domain-invariant, which pulls its weights towards 1: ``"input"``
        keeps the shift visible there.
    random_state : int, `~numpy.random.RandomState` or None, default=None
        Seeds the PCA's randomised solver.

    Attributes
    ----------
    effective_size_ : float
        Kish's effective number of weighted source rows, of the last call.
    density_ratio_ : `~astromorphnet.uncertainty.DomainDensityRatio`
        The density ratio of the last call.

    Raises
    ------
    ValueError
        When called on a fold without labelled source rows or without
        target rows.

    Warns
    -----
    astropy.utils.exceptions.AstropyUserWarning
        When the effective number of weighted source rows is below
        `MIN_EFFECTIVE_SIZE` (30).

    See Also
    --------
    DeepEmbeddedValidationScorer : the same estimate with a control variate.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LinearRegression
    >>> from astromorphnet.model_selection import ImportanceWeightedScorer
    >>> rng = np.random.default_rng(0)
    >>> x = np.r_[rng.normal(0, 1, 300), rng.normal(1, 1, 300)][:, np.newaxis]
    >>> y = np.where(np.arange(600) < 300, x[:, 0] ** 2, np.nan)
    >>> domain = np.r_[np.ones(300), -np.ones(300)].astype(int)
    >>> model = LinearRegression().fit(x[:300], y[:300])
    >>> score = ImportanceWeightedScorer(random_state=0)(model, x, y, sample_domain=domain)
    >>> bool(score < 0)
    True
    """

    def _risk(self, loss, weights):
        return float(np.sum(weights * loss) / np.sum(weights))


class DeepEmbeddedValidationScorer(_DomainShiftScorer):
    """Deep embedded validation (You et al. 2019) for regression, needing no target labels.

    As `ImportanceWeightedScorer`, but the importance-weighted risk gets a
    control variate, which cuts its variance: with weights ``w_i`` (mean 1
    over the source in expectation) and per-row losses ``L_i``,

    ``risk = mean(w L) + η (mean(w) - 1)``,  ``η = -cov(w L, w) / var(w)``,

    and ``score = -risk``.  ``L_i`` is the row's squared error averaged over
    targets, each divided by the variance of its source labels in the fold.
    skada's ``DeepEmbeddedValidation`` needs ``predict_proba``
    (classification); this is its regression counterpart.

    Parameters
    ----------
    weight_clip : float, default=0.01
        Bound on the domain classifier's probabilities, in (0, 0.5).
    n_components : int, default=16
        PCA components of the features the domain classifier reads.
    features : {"network", "input"}, default="network"
        What the domain classifier reads (see `ImportanceWeightedScorer`).
    random_state : int, `~numpy.random.RandomState` or None, default=None
        Seeds the PCA's randomised solver.

    Attributes
    ----------
    effective_size_ : float
        Kish's effective number of weighted source rows, of the last call.
    density_ratio_ : `~astromorphnet.uncertainty.DomainDensityRatio`
        The density ratio of the last call.
    control_variate_ : float
        The coefficient ``η`` of the last call (0 when the weights are all
        equal).

    Raises
    ------
    ValueError
        When called on a fold without labelled source rows or without
        target rows.

    Warns
    -----
    astropy.utils.exceptions.AstropyUserWarning
        When the effective number of weighted source rows is below
        `MIN_EFFECTIVE_SIZE` (30), or the control variate drives the
        estimated risk below zero (weights too heavy-tailed).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LinearRegression
    >>> from astromorphnet.model_selection import DeepEmbeddedValidationScorer
    >>> rng = np.random.default_rng(0)
    >>> x = np.r_[rng.normal(0, 1, 300), rng.normal(1, 1, 300)][:, np.newaxis]
    >>> y = np.where(np.arange(600) < 300, x[:, 0] ** 2, np.nan)
    >>> domain = np.r_[np.ones(300), -np.ones(300)].astype(int)
    >>> model = LinearRegression().fit(x[:300], y[:300])
    >>> scorer = DeepEmbeddedValidationScorer(random_state=0)
    >>> bool(scorer(model, x, y, sample_domain=domain) < 0)
    True
    """

    def _risk(self, loss, weights):
        weighted = weights * loss
        variance = np.var(weights, ddof=1) if len(weights) > 1 else 0.0
        self.control_variate_ = (0.0 if variance == 0
                                 else float(-np.cov(weighted, weights)[0, 1] / variance))
        risk = float(weighted.mean() + self.control_variate_ * (weights.mean() - 1))
        if risk < 0:
            warnings.warn(
                f"{type(self).__name__}: the control variate made the estimated risk negative "
                f"({risk:.3g}), which a squared error cannot be: the density-ratio weights are "
                "too heavy-tailed for it; prefer ImportanceWeightedScorer here, or a larger "
                "weight_clip", AstropyUserWarning)
        return risk


def _predict_with_features(estimator, X, y, features):
    """``(predictions, labels, domain-classifier input)``, arrays of one row per cutout."""
    from ..estimators._base import BaseSersicRegressor

    if isinstance(estimator, Pipeline) and len(estimator) > 1:
        # The final step's own input (cropped, scaled, ...) is what it sees.
        X = estimator[:-1].transform(X)
        estimator = estimator[-1]
    if not isinstance(estimator, BaseSersicRegressor):
        x = np.asarray(X, float)
        labels = _as_2d(np.asarray(y, float))
        predicted = _as_2d(np.asarray(estimator.predict(X), float))
        _check_rows(len(x), labels, predicted)
        return predicted, labels, x.reshape(len(x), -1)
    # Network features always: a weighted calibration needs them to predict.
    raw, feats, _, stamps = estimator._predict_raw(X, features=True)
    labels = labels_to_array(y, estimator.targets_, pixel_scale=stamps.pixel_scale,
                             allow_nan=True)
    _check_rows(len(stamps), labels)
    predicted = estimator._distribution(raw, stamps, feats).median
    if features == "input":
        # The network's own input: cutouts stretched and scaled as it reads them.
        feats, _ = estimator._read(stamps, 0, len(stamps))
    return predicted, labels, np.asarray(feats, float).reshape(len(stamps), -1)


def _as_2d(values):
    return values[:, np.newaxis] if values.ndim == 1 else values.reshape(len(values), -1)


def _check_rows(n, labels, predicted=None):
    if len(labels) != n:
        raise ValueError(f"X has {n} rows but y has {len(labels)}; give exactly one label "
                         "row per cutout")
    if predicted is not None and predicted.shape != labels.shape:
        raise ValueError(f"the estimator's predictions have shape {predicted.shape} but y "
                         f"has {labels.shape}: the scorer needs array predictions shaped "
                         "like y")

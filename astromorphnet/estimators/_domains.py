"""Source/target domain bookkeeping shared by the domain-adaptation estimators.

The convention is scikit-learn's as skada uses it: one ``X`` holding both
domains, a per-row ``sample_domain`` (positive = source/simulated, negative =
target/real), and ``y`` with NaN rows where targets are unlabelled.
"""

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..catalog._targets import TARGETS, labels_to_array

__all__ = ["SOURCE", "TARGET", "DomainScoreMixin", "check_sample_domain", "stack_domains"]

#: ``sample_domain`` values `stack_domains` writes.
SOURCE, TARGET = 1, -1


def check_sample_domain(sample_domain, labels, *, require_both=True):
    """Validate ``sample_domain``; return a boolean array, True on target rows.

    Without ``sample_domain``, rows whose labels are all NaN are the target
    domain (unlabelled real galaxies), the rest the source.
    """
    n = len(labels)
    if sample_domain is None:
        target = np.isnan(labels).all(axis=1)
    else:
        sample_domain = np.asarray(sample_domain)
        if sample_domain.shape != (n,):
            raise ValueError(f"sample_domain must have one entry per cutout, shape ({n},); "
                             f"got {sample_domain.shape}")
        valid = sample_domain.dtype.kind in "iuf"
        if valid and sample_domain.dtype.kind == "f":
            with np.errstate(invalid="ignore"):
                valid = bool(np.all(np.isfinite(sample_domain)
                                    & (sample_domain == np.round(sample_domain))))
        if not valid or (sample_domain == 0).any():
            raise ValueError("sample_domain must hold positive integers for source "
                             "(simulated) rows and negative ones for target (real) rows; "
                             "0, NaN, fractions and non-numbers are neither")
        target = sample_domain < 0
    if require_both and (target.all() or not target.any()):
        which = "target" if not target.any() else "source"
        raise ValueError(
            f"domain adaptation needs both domains, but there are no {which} rows: pass "
            "sample_domain (positive = source, negative = target), or give unlabelled "
            "target rows NaN labels")
    source_nan = np.isnan(labels[~target]).any()
    if source_nan:
        raise ValueError("source (simulated) rows must be fully labelled; found NaN labels "
                         "on source rows")
    return target


def stack_domains(X_source, y_source, X_target, y_target=None, *, targets=TARGETS):
    """Stack a source and a target set into the one-``X`` convention.

    Parameters
    ----------
    X_source, X_target : array-like ``(n, ny, nx)`` or list of NDData
        Cutouts of each domain (both lists or both arrays of one shape;
        the masks of masked arrays are kept).
    y_source : `~astropy.table.QTable` or array-like
        Source labels.
    y_target : `~astropy.table.QTable`, array-like or None
        Target labels; None for unlabelled targets (NaN rows).
    targets : tuple of str, optional
        Label columns, in order.

    Returns
    -------
    X : `~numpy.ndarray` or list
        Source rows then target rows.  Arrays carry no zeropoint, so the
        estimator's ``zeropoint`` applies to both domains: when the two
        surveys' zeropoints differ, give lists of
        `~astropy.nddata.NDData` with ``MAGZERO`` in each cutout's ``meta``.
    y : `~numpy.ndarray`
        Labels ``(n_source + n_target, n_targets)``, NaN where unlabelled.
    sample_domain : `~numpy.ndarray`
        `SOURCE` (1) then `TARGET` (-1).

    Raises
    ------
    ValueError
        If labels lack a target column, hold NaN source labels, or do not
        have one row per cutout.

    Examples
    --------
    >>> import numpy as np
    >>> from astromorphnet.estimators import stack_domains
    >>> X, y, domain = stack_domains(np.zeros((2, 8, 8)), np.full((2, 4), 0.5),
    ...                              np.zeros((3, 8, 8)))
    >>> X.shape, int(np.isnan(y).all(axis=1).sum()), domain.tolist()
    ((5, 8, 8), 3, [1, 1, -1, -1, -1])
    """
    y_s = labels_to_array(y_source, targets)
    n_t = len(X_target)
    y_t = (np.full((n_t, y_s.shape[1]), np.nan) if y_target is None
           else labels_to_array(y_target, targets, allow_nan=True))
    for name, X, y in (("source", X_source, y_s), ("target", X_target, y_t)):
        if len(X) != len(y):
            raise ValueError(f"the {name} domain has {len(X)} cutouts but {len(y)} label "
                             "rows; give exactly one label row per cutout")
    if isinstance(X_source, (list, tuple)) or isinstance(X_target, (list, tuple)):
        X = list(X_source) + list(X_target)
    else:
        # np.concatenate drops the masks of masked arrays; np.ma.concatenate keeps them.
        masked = np.ma.isMaskedArray(X_source) or np.ma.isMaskedArray(X_target)
        concatenate = np.ma.concatenate if masked else np.concatenate
        X = concatenate([np.asanyarray(X_source), np.asanyarray(X_target)])
    domain = np.r_[np.full(len(y_s), SOURCE), np.full(n_t, TARGET)]
    return X, np.vstack([y_s, y_t]), domain


class DomainScoreMixin:
    """``score`` on the labelled target rows, for the domain-adaptation estimators.

    With ``sample_domain`` (routed by `~sklearn.model_selection.GridSearchCV`
    when requested with ``set_score_request(sample_domain=True)``), only
    target rows count: adaptation is judged on the domain it adapts to.
    Unlabelled (NaN) rows are skipped.
    """

    def score(self, X, y, sample_weight=None, sample_domain=None):
        """Mean R² over the parameters, on labelled target rows.

        Parameters
        ----------
        X : cutouts
            As for `predict`.
        y : `~astropy.table.QTable` or array-like
            Labels; NaN rows (unlabelled) are skipped.
        sample_weight : array-like, optional
            Per-cutout weights.
        sample_domain : array-like of int, optional
            Positive for source, negative for target rows; when given, only
            target rows are scored.

        Returns
        -------
        score : float

        Raises
        ------
        ValueError
            If no labelled (target) row is left to score.
        """
        from .._input import as_stamps
        from ._base import BaseSersicRegressor, _check_sample_weight

        check_is_fitted(self)
        stamps = as_stamps(X, pixel_scale=self.pixel_scale, zeropoint=self.zeropoint)
        labels = labels_to_array(y, self.targets_, pixel_scale=stamps.pixel_scale,
                                 allow_nan=True)
        if len(labels) != len(stamps):
            raise ValueError(f"X has {len(stamps)} cutouts but y has {len(labels)} label "
                             "rows; give exactly one label row per cutout")
        rows = np.isfinite(labels).all(axis=1)
        if sample_domain is not None:
            rows &= check_sample_domain(sample_domain, labels, require_both=False)
        if not rows.any():
            raise ValueError("no labelled target rows to score: score needs target cutouts "
                             "with finite labels")
        sw = _check_sample_weight(sample_weight, len(labels))
        return BaseSersicRegressor.score(self, stamps.take(np.flatnonzero(rows)), labels[rows],
                                         None if sw is None else sw[rows])

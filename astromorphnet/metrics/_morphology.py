"""Euclid Morphology Challenge metrics: bias, dispersion and outliers per magnitude bin."""

import astropy.units as u
import numpy as np
from astropy.table import QTable, Table

from ..catalog._targets import TARGETS, check_targets, labels_to_array

__all__ = ["OUTLIER_THRESHOLDS", "morphology_errors", "morphology_metrics"]

#: Default outlier threshold on the absolute per-galaxy error of each
#: parameter (in the units of `morphology_errors`: mag, relative, dex,
#: absolute).  0.5 is the Euclid Morphology Challenge's default limit
#: :math:`b_p` for every parameter (Bretonnière et al. 2023).
OUTLIER_THRESHOLDS = {"mag": 0.5, "r_eff": 0.5, "sersic_n": 0.5, "ellipticity": 0.5}

#: Per-galaxy error of each parameter: its kind and the unit of the metrics.
_ERROR_KINDS = {
    "mag": ("pred - true", u.mag),
    "r_eff": ("(pred - true) / true", None),
    "sersic_n": ("log10(pred / true)", None),
    "ellipticity": ("pred - true", None),
}


def morphology_errors(true, pred, target):
    """Per-galaxy error of one Sérsic parameter, as the Euclid Morphology Challenge defines it.

    Parameters
    ----------
    true, pred : array-like
        True and predicted values in the units of
        `~astromorphnet.catalog.TARGET_UNITS`.
    target : {"mag", "r_eff", "sersic_n", "ellipticity"}
        The parameter.

    Returns
    -------
    error : `~numpy.ndarray`
        ``mag``: ``pred - true`` (mag); ``r_eff``: ``(pred - true) / true``
        (relative); ``sersic_n``: ``log10(pred / true)`` (dex);
        ``ellipticity``: ``pred - true`` (absolute).

    Raises
    ------
    ValueError
        If ``target`` is unknown, the shapes differ, a true ``r_eff`` or
        ``sersic_n`` is not positive, or a predicted ``sersic_n`` is not
        positive.

    Examples
    --------
    >>> from astromorphnet.metrics import morphology_errors
    >>> morphology_errors([2.0, 4.0], [2.2, 3.0], "r_eff").round(3)
    array([ 0.1 , -0.25])
    >>> morphology_errors([1.0, 4.0], [10.0, 4.0], "sersic_n")
    array([1., 0.])
    """
    (target,) = check_targets(target)
    true = np.asarray(true, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if true.shape != pred.shape:
        raise ValueError(f"true and pred differ in shape: {true.shape} and {pred.shape}")
    if target in ("r_eff", "sersic_n") and np.any(true <= 0):
        raise ValueError(f"true {target} must be > 0 for its "
                         f"{_ERROR_KINDS[target][0]} error; "
                         f"{int(np.sum(true <= 0))} value(s) are not")
    if target == "mag" or target == "ellipticity":
        return pred - true
    if target == "r_eff":
        return (pred - true) / true
    if np.any(pred <= 0):
        raise ValueError(f"predicted sersic_n must be > 0 for its log10(pred / true) error; "
                         f"{int(np.sum(pred <= 0))} value(s) are not")
    return np.log10(pred / true)


def morphology_metrics(y_true, y_pred, *, targets=None, mag_bins=5, outlier_threshold=None):
    """Bias, dispersion and outlier fraction per bin of true magnitude.

    The metrics of the Euclid Morphology Challenge (Bretonnière et al. 2023,
    A&A 671, A102), computed from the per-galaxy errors of
    `morphology_errors`:

    * ``mag``: ``pred - true`` [mag];
    * ``r_eff``: ``(pred - true) / true`` (relative error);
    * ``sersic_n``: ``log10(pred / true)`` [dex];
    * ``ellipticity``: ``pred - true`` (absolute error).

    In each bin, over all its galaxies (outliers included):

    * **bias** is the median error;
    * **dispersion** is σ68, half the spread between the 16th and 84th
      percentiles of the error (linear interpolation between order
      statistics, NumPy's default): the standard deviation for Gaussian
      errors, insensitive to outliers;
    * **outlier fraction** is the fraction of galaxies whose absolute error
      exceeds the parameter's threshold, ``|error| > threshold`` (the
      challenge's definition: a threshold on the error itself, not on its
      distance to the bias).

    Parameters
    ----------
    y_true : `~astropy.table.QTable` or array-like
        True labels: a table with the parameter columns, or an array
        ``(n, len(targets))`` in the units of
        `~astromorphnet.catalog.TARGET_UNITS`.
    y_pred : `~astropy.table.QTable`, array-like, or dict
        Predictions in the same form (a catalog of
        an estimator's ``predict`` works, e.g. `~astromorphnet.SersicCNNRegressor`'s), or
        ``{model name: predictions}`` for several models.
    targets : tuple of str, optional
        Parameters to score; default: those of
        `~astromorphnet.catalog.TARGETS` in the tables given (all four for
        arrays).
    mag_bins : int, sequence of float, str or None, optional
        Bins of *true* magnitude, as `numpy.histogram_bin_edges` takes them:
        a number of equal-width bins spanning the true magnitudes (default
        5; pass edges to compare data sets on the same bins), the bin edges
        in AB mag (a `~astropy.units.Quantity` is converted), or a NumPy
        binning rule such as ``"auto"``.  Bins are
        half-open ``[low, high)`` except the last, which includes ``high``;
        galaxies outside all bins are left out.  ``None`` gives one bin,
        ``"all"``.  The true magnitude comes from the ``mag`` column of a
        ``y_true`` table, or from the ``mag`` column of an array when
        ``"mag"`` is a target; without it there is a single bin ``"all"``.
    outlier_threshold : float or dict, optional
        Threshold on ``|error|``, in the units of the errors above: one value
        for all parameters, or ``{parameter: value}`` overriding
        `OUTLIER_THRESHOLDS` (0.5 for every parameter, the challenge's
        default).

    Returns
    -------
    table : `~astropy.table.QTable`
        One row per magnitude bin (per model, model by model, for a dict),
        with columns:

        * ``model``: the model's name (dict form only);
        * ``mag_bin``: the bin as text, e.g. ``"[20.00, 22.00)"``, or ``"all"``;
        * ``mag_low``, ``mag_high`` [ABmag]: the bin edges (NaN for ``"all"``);
        * ``n``: the number of galaxies in the bin;
        * for each parameter ``p``: ``p_bias``, ``p_dispersion`` and
          ``p_outlier_fraction``.  ``mag_bias`` and ``mag_dispersion`` are in
          mag; the others are dimensionless (``sersic_n``'s in dex).

        Empty bins have ``n = 0`` and NaN metrics.  ``table.meta`` records
        the error definitions and the outlier thresholds used.

    Raises
    ------
    ValueError
        On unknown targets, missing columns, shapes that differ, NaN in
        ``y_true`` or the predictions, a non-positive true ``r_eff`` or
        ``sersic_n`` or predicted ``sersic_n``, an empty dict of models,
        malformed bins, or an unknown or negative outlier threshold.

    See Also
    --------
    r2_table : Per-parameter R².

    Notes
    -----
    The challenge's own code (github.com/Hbretonniere/Euclid_Morphology_Challenge)
    measures the dispersion as the 68th percentile of ``|error| - bias``;
    σ68 equals the 68th percentile of ``|error - bias|`` for errors
    symmetric about their median.  It also takes a relative error for the
    magnitude, where this function takes the difference in magnitude.

    Examples
    --------
    >>> import numpy as np
    >>> from astromorphnet.metrics import morphology_metrics
    >>> truth = np.array([[20.0, 3.0, 1.0, 0.2], [21.0, 5.0, 4.0, 0.5],
    ...                   [23.0, 9.0, 2.0, 0.7], [24.0, 4.0, 1.5, 0.1]])
    >>> pred = truth * [1.0, 1.1, 1.0, 1.0] + [0.1, 0.0, 0.0, 0.0]
    >>> table = morphology_metrics(truth, pred, mag_bins=[20, 22, 24])
    >>> table["mag_bin"].tolist(), table["n"].tolist()
    (['[20.00, 22.00)', '[22.00, 24.00]'], [2, 2])
    >>> table["mag_bias"].round(3)
    <Quantity [0.1, 0.1] mag>
    >>> table["r_eff_bias"].round(3).tolist(), table["sersic_n_outlier_fraction"].tolist()
    ([0.1, 0.1], [0.0, 0.0])

    Several models, over all galaxies:

    >>> table = morphology_metrics(truth, {"cnn": pred, "perfect": truth}, mag_bins=None)
    >>> table["model", "mag_bin", "n"].pprint()
     model  mag_bin  n
    ------- ------- ---
        cnn     all   4
    perfect     all   4
    """
    is_dict = isinstance(y_pred, dict)
    targets, true, predictions = _resolve(y_true, y_pred, targets)
    thresholds = _thresholds(outlier_threshold, targets)
    true_mag = _true_magnitude(y_true, true, targets)
    edges, index = _bin(true_mag, mag_bins, len(true))
    errors = {
        name: {t: _errors(true[:, j], values[:, j], t, name, is_dict)
               for j, t in enumerate(targets)}
        for name, values in predictions.items()
    }

    columns = {name: [] for name in ("model", "mag_bin", "mag_low", "mag_high", "n")}
    metrics = {f"{t}_{m}": [] for t in targets
               for m in ("bias", "dispersion", "outlier_fraction")}
    for name in predictions:
        for k in range(1 if edges is None else len(edges) - 1):
            in_bin = index == k
            columns["model"].append(name)
            if edges is None:
                columns["mag_bin"].append("all")
                columns["mag_low"].append(np.nan)
                columns["mag_high"].append(np.nan)
            else:
                closing = "]" if k == len(edges) - 2 else ")"
                columns["mag_bin"].append(f"[{edges[k]:.2f}, {edges[k + 1]:.2f}{closing}")
                columns["mag_low"].append(edges[k])
                columns["mag_high"].append(edges[k + 1])
            columns["n"].append(int(in_bin.sum()))
            for t in targets:
                bias, dispersion, outliers = _summarize(errors[name][t][in_bin], thresholds[t])
                metrics[f"{t}_bias"].append(bias)
                metrics[f"{t}_dispersion"].append(dispersion)
                metrics[f"{t}_outlier_fraction"].append(outliers)

    table = QTable()
    if is_dict:
        table["model"] = columns["model"]
    table["mag_bin"] = columns["mag_bin"]
    table["mag_low"] = np.array(columns["mag_low"], dtype=np.float64) * u.ABmag
    table["mag_high"] = np.array(columns["mag_high"], dtype=np.float64) * u.ABmag
    table["mag_low"].info.format = table["mag_high"].info.format = ".2f"
    table["n"] = np.array(columns["n"], dtype=np.int64)
    for t in targets:
        for metric in ("bias", "dispersion", "outlier_fraction"):
            values = np.array(metrics[f"{t}_{metric}"], dtype=np.float64)
            unit = _ERROR_KINDS[t][1] if metric != "outlier_fraction" else None
            table[f"{t}_{metric}"] = values if unit is None else values * unit
            table[f"{t}_{metric}"].info.format = ".4f"
    table.meta["errors"] = {t: _ERROR_KINDS[t][0] for t in targets}
    table.meta["dispersion"] = "(percentile 84 - percentile 16) / 2 of the errors"
    table.meta["outliers"] = "|error| > threshold"
    table.meta["outlier_thresholds"] = thresholds
    return table


def _resolve(y_true, y_pred, targets):
    """Targets, true labels and ``{name: predicted labels}`` as float arrays.

    Shared with `astromorphnet.visualization`.
    """
    predictions = y_pred if isinstance(y_pred, dict) else {"": y_pred}
    if not predictions:
        raise ValueError("y_pred is an empty dict: give {model name: predictions}")
    if targets is None:
        tables = [y for y in (y_true, *predictions.values()) if isinstance(y, Table)]
        targets = tuple(t for t in TARGETS if all(t in y.colnames for y in tables))
        if not targets:
            raise ValueError(f"the label and prediction tables share no parameter column "
                             f"among {TARGETS}")
    targets = check_targets(targets)
    true = _labels(y_true, targets, "y_true", check_range=True)
    arrays = {}
    for name, pred in predictions.items():
        what = f"predictions of {name!r}" if isinstance(y_pred, dict) else "y_pred"
        # Predictions may extrapolate beyond the physical ranges; labels may not.
        values = _labels(pred, targets, what, check_range=False)
        if values.shape != true.shape:
            raise ValueError(f"{what} have shape {values.shape}; the labels have {true.shape}")
        arrays[name] = values
    return targets, true, arrays


def _labels(y, targets, what, check_range):
    """`labels_to_array`, its errors naming the argument, and no NaN."""
    try:
        values = labels_to_array(y, targets, allow_nan=True, check_range=check_range)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    _check_nan(values, what)
    return values


def _check_nan(values, what):
    if np.isnan(values).any():
        rows = np.flatnonzero(np.isnan(values).any(axis=1))
        raise ValueError(f"{what} contain NaN in {len(rows)} row(s) (first: "
                         f"{rows[:5].tolist()}); every galaxy needs a true and a "
                         "predicted value: drop those rows")


def _thresholds(outlier_threshold, targets):
    if outlier_threshold is None:
        outlier_threshold = {}
    elif not isinstance(outlier_threshold, dict):
        outlier_threshold = dict.fromkeys(targets, outlier_threshold)
    unknown = set(outlier_threshold) - set(TARGETS)
    if unknown:
        raise ValueError(f"outlier_threshold has unknown parameter(s) {sorted(unknown)}; "
                         f"expected names among {TARGETS}")
    thresholds = {t: float({**OUTLIER_THRESHOLDS, **outlier_threshold}[t]) for t in targets}
    bad = {t: v for t, v in thresholds.items() if not v >= 0}
    if bad:
        raise ValueError(f"outlier thresholds must be >= 0; got {bad}")
    return thresholds


def _true_magnitude(y_true, true, targets):
    if "mag" in targets:
        return true[:, targets.index("mag")]
    if isinstance(y_true, Table) and "mag" in y_true.colnames:
        mag = labels_to_array(y_true, ("mag",), allow_nan=True)[:, 0]
        _check_nan(mag[:, np.newaxis], "the true magnitudes of y_true")
        return mag
    return None


def _bin(true_mag, mag_bins, n):
    """Bin edges (None for the single bin "all") and each galaxy's bin (-1: outside all)."""
    if true_mag is None or mag_bins is None:
        return None, np.zeros(n, dtype=int)
    if isinstance(mag_bins, u.Quantity):
        mag_bins = mag_bins.to_value(u.ABmag)
    try:
        edges = np.histogram_bin_edges(true_mag, bins=mag_bins)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"mag_bins must be a number of bins, increasing bin edges or a "
                         f"NumPy binning rule; got {mag_bins!r} ({exc})") from None
    if len(edges) < 2 or not np.all(np.isfinite(edges)):
        raise ValueError(f"mag_bins must give at least one finite bin; got edges {edges}")
    index = np.searchsorted(edges, true_mag, side="right") - 1
    index[true_mag == edges[-1]] = len(edges) - 2
    index[(true_mag < edges[0]) | (true_mag > edges[-1])] = -1
    return edges, index


def _errors(true, pred, target, name, is_dict):
    try:
        return morphology_errors(true, pred, target)
    except ValueError as exc:
        if is_dict:
            raise ValueError(f"model {name!r}: {exc}") from None
        raise


def _summarize(error, threshold):
    if len(error) == 0:
        return np.nan, np.nan, np.nan
    low, median, high = np.percentile(error, [16, 50, 84])
    return median, (high - low) / 2, float(np.mean(np.abs(error) > threshold))

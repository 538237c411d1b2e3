"""Calibration of predicted uncertainties: coverage, sharpness and the Euclid "error prediction"."""

import math

import astropy.units as u
import numpy as np
from astropy.table import QTable, Table

from ..catalog._targets import TARGET_UNITS, TARGETS, check_targets
from ._morphology import _bin, _check_nan, _labels, _true_magnitude

__all__ = ["calibration_curve", "coverage_table", "error_prediction"]

#: Nominal coverages of `calibration_curve` by default: 5 % … 95 % in steps
#: of 5 %, with the Gaussian 1σ and 2σ coverages.
_DEFAULT_LEVELS = np.union1d(np.round(np.arange(0.05, 0.951, 0.05), 2), [0.6827, 0.9545])

#: Coverage of the ±1σ interval of a Gaussian: the ideal `error_prediction`.
_ONE_SIGMA = math.erf(1 / math.sqrt(2))


def coverage_table(distribution, y_true, levels=(0.68, 0.95)):
    """Observed coverage and mean width of the predicted intervals, per parameter.

    For each nominal coverage ``level``, the central interval
    ``distribution.interval(level)`` of every galaxy is compared with its
    true value: the **coverage** is the fraction of true values inside
    (bounds included), which is ``level`` for calibrated uncertainties; the
    **width** is the mean interval width, the sharpness (narrower is better
    at equal coverage).

    Parameters
    ----------
    distribution : object
        Predicted distributions of ``n`` galaxies, as an estimator's
        ``predict_distribution`` returns them: ``distribution.targets``
        (parameter names) and ``distribution.interval(coverage)`` returning
        the bounds ``(lo, hi)``, two arrays ``(n, len(targets))`` in the
        units of `~astromorphnet.catalog.TARGET_UNITS`.
    y_true : `~astropy.table.QTable` or array-like
        True labels of the same galaxies: a table with the parameter
        columns, or an array ``(n, len(targets))`` in the units of
        `~astromorphnet.catalog.TARGET_UNITS`.
    levels : sequence of float, optional
        Nominal coverages, each in (0, 1); default 68 % and 95 %.

    Returns
    -------
    table : `~astropy.table.QTable`
        One row per parameter, with columns ``parameter``, then for each
        level, e.g. 0.68: ``coverage_68`` (observed coverage) and
        ``width_68`` (mean width), then ``unit``, the unit of the widths
        (``"mag"`` for the magnitude, a magnitude difference; ``"pix"``
        for ``r_eff``; ``""`` when dimensionless).  A level with decimals
        names its columns with an underscore: 0.6827 gives
        ``coverage_68_27``.  ``table.meta`` holds ``n``, the number of
        galaxies, and ``levels``.

    Raises
    ------
    TypeError
        If ``distribution`` lacks ``targets`` or ``interval``.
    ValueError
        If a level is not in (0, 1) or is repeated, the labels lack a
        parameter, hold NaN or lie outside
        `~astromorphnet.catalog.PHYSICAL_RANGES`, or the bounds have
        another shape than the labels, hold NaN or have ``lo > hi``.

    See Also
    --------
    calibration_curve : Observed against nominal coverage at many levels.
    error_prediction : Coverage of ±1σ per magnitude bin.

    Notes
    -----
    The observed coverage ``p`` of ``n`` galaxies has a binomial standard
    error ``sqrt(p (1 - p) / n)``: 2.1 % at 68 % for 500 galaxies, 1.0 %
    at 95 %.  A deviation from the nominal level smaller than about twice
    that is not evidence of miscalibration.

    Examples
    --------
    A stand-in for an estimator's predicted distributions: Gaussians of
    known width around the point estimates.

    >>> import numpy as np
    >>> from scipy import stats
    >>> from astromorphnet.metrics import coverage_table
    >>> class Gaussian:
    ...     targets = ("mag", "r_eff")
    ...     def __init__(self, median, sigma):
    ...         self.median, self.sigma = median, sigma
    ...     def interval(self, coverage):
    ...         return stats.norm.interval(coverage, self.median, self.sigma)
    >>> rng = np.random.default_rng(0)
    >>> truth = np.column_stack([rng.uniform(18, 24, 2000), rng.uniform(2, 20, 2000)])
    >>> sigma = np.array([0.1, 0.5])
    >>> table = coverage_table(Gaussian(truth + rng.normal(0, sigma, truth.shape), sigma), truth)
    >>> table["parameter", "coverage_68", "coverage_95", "unit"].pprint()
    parameter coverage_68 coverage_95 unit
    --------- ----------- ----------- ----
          mag       0.670       0.946  mag
        r_eff       0.681       0.950  pix
    >>> table["width_68"].round(3).tolist()  # 2 × 0.994 σ
    [0.199, 0.994]
    """
    levels = _check_levels(levels, "levels")
    names = [_level_name(level) for level in levels]
    targets, true = _targets_and_labels(distribution, y_true)
    coverage, width = _coverage_and_width(distribution, true, levels)

    table = QTable()
    table["parameter"] = list(targets)
    for i, name in enumerate(names):
        table[f"coverage_{name}"] = coverage[i]
        table[f"coverage_{name}"].info.format = ".3f"
    for i, name in enumerate(names):
        table[f"width_{name}"] = width[i]
        table[f"width_{name}"].info.format = ".4g"
    table["unit"] = [_error_unit(t).to_string() for t in targets]
    table.meta["n"] = len(true)
    table.meta["levels"] = levels.tolist()
    table.meta["coverage"] = "fraction of true values with lo <= true <= hi"
    table.meta["width"] = "mean of hi - lo, in the column 'unit'"
    return table


def calibration_curve(distribution, y_true, levels=None):
    """Observed against nominal coverage of the predicted central intervals.

    Calibrated uncertainties follow the diagonal; a curve below it means
    over-confident errors (intervals too narrow), above it under-confident
    ones.  Plot it with
    `~astromorphnet.visualization.plot_calibration_curve`.

    Parameters
    ----------
    distribution : object
        Predicted distributions of ``n`` galaxies, as an estimator's
        ``predict_distribution`` returns them: ``distribution.targets``
        (parameter names) and ``distribution.interval(coverage)`` returning
        the bounds ``(lo, hi)``, two arrays ``(n, len(targets))`` in the
        units of `~astromorphnet.catalog.TARGET_UNITS`.  It is computed
        once; only ``interval`` is called, once per level.
    y_true : `~astropy.table.QTable` or array-like
        True labels of the same galaxies: a table with the parameter
        columns, or an array ``(n, len(targets))`` in the units of
        `~astromorphnet.catalog.TARGET_UNITS`.
    levels : sequence of float, optional
        Nominal coverages, each in (0, 1).  Default: 0.05 to 0.95 in steps
        of 0.05, with 0.6827 and 0.9545 (the Gaussian ±1σ and ±2σ).

    Returns
    -------
    table : `~astropy.table.QTable`
        One row per level, in increasing order: column ``nominal``, then one
        column per parameter with its observed coverage.  ``table.meta``
        holds ``n``, the number of galaxies.

    Raises
    ------
    TypeError
        If ``distribution`` lacks ``targets`` or ``interval``.
    ValueError
        If a level is not in (0, 1) or is repeated, the labels lack a
        parameter, hold NaN or lie outside
        `~astromorphnet.catalog.PHYSICAL_RANGES`, or the bounds have
        another shape than the labels, hold NaN or have ``lo > hi``.

    See Also
    --------
    coverage_table : Coverage and interval width at a few levels.

    Examples
    --------
    Over-confident Gaussian errors, half the true scatter:

    >>> import numpy as np
    >>> from scipy import stats
    >>> from astromorphnet.metrics import calibration_curve
    >>> class Gaussian:
    ...     targets = ("sersic_n",)
    ...     def __init__(self, median, sigma):
    ...         self.median, self.sigma = median, sigma
    ...     def interval(self, coverage):
    ...         return stats.norm.interval(coverage, self.median, self.sigma)
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.uniform(0.5, 6, (4000, 1))
    >>> curve = calibration_curve(Gaussian(truth + rng.normal(0, 0.2, truth.shape), 0.1),
    ...                           truth, levels=[0.5, 0.6827, 0.9])
    >>> curve.pprint()
    nominal sersic_n
    ------- --------
      0.500    0.266
      0.683    0.379
      0.900    0.582
    """
    levels = np.sort(_check_levels(_DEFAULT_LEVELS if levels is None else levels, "levels"))
    targets, true = _targets_and_labels(distribution, y_true)
    coverage, _ = _coverage_and_width(distribution, true, levels)
    table = QTable()
    table["nominal"] = levels
    table["nominal"].info.format = ".3f"
    for j, target in enumerate(targets):
        table[target] = coverage[:, j]
        table[target].info.format = ".3f"
    table.meta["n"] = len(true)
    table.meta["coverage"] = "fraction of true values with lo <= true <= hi"
    return table


def error_prediction(catalog, y_true, *, targets=None, mag_bins=5):
    """Fraction of true values within ±1σ of the prediction, per bin of true magnitude.

    The "error prediction" of the Euclid Morphology Challenge (Bretonnière
    et al. 2023, A&A 671, A102): in each magnitude bin, the fraction of
    galaxies with ``|predicted - true| <= error``.  For Gaussian errors of
    the right size it is 0.683; below, the errors are too small
    (over-confident); above, too large.

    Parameters
    ----------
    catalog : `~astropy.table.Table` or object
        The predictions: a catalog with, for each parameter ``p``, the
        point estimate ``p`` and its 1σ error ``p_err`` (an estimator's
        ``predict`` catalog), or an estimator's ``predict_distribution``
        (``targets``, ``median`` and ``error``, arrays ``(n, len(targets))``).
        Errors without unit are in the units of
        `~astromorphnet.catalog.TARGET_UNITS` (mag for ``mag_err``).
    y_true : `~astropy.table.QTable` or array-like
        True labels of the same galaxies: a table with the parameter
        columns, or an array ``(n, len(targets))`` in the units of
        `~astromorphnet.catalog.TARGET_UNITS`.
    targets : tuple of str, optional
        Parameters to score; default: every parameter of
        `~astromorphnet.catalog.TARGETS` with both columns in the catalog,
        or the distribution's ``targets``.
    mag_bins : int, sequence of float, str or None, optional
        Bins of *true* magnitude, exactly as in
        `~astromorphnet.metrics.morphology_metrics` (the same arguments
        give the same bins): a number of equal-width bins (default 5), bin
        edges in AB mag, a NumPy binning rule, or ``None`` for one bin
        ``"all"``.  The true magnitude comes from the ``mag`` column of
        ``y_true`` (a table's, or the array's when ``"mag"`` is a target).

    Returns
    -------
    table : `~astropy.table.QTable`
        One row per magnitude bin, with columns ``mag_bin``, ``mag_low``,
        ``mag_high`` [ABmag] and ``n`` as in
        `~astromorphnet.metrics.morphology_metrics`, then, for each
        parameter ``p``, ``p_within_1sigma``: the fraction of the bin's
        galaxies whose true value lies within ±1σ (NaN in an empty bin).
        ``table.meta["ideal"]`` is 0.6827 (erf(1/√2)).

    Raises
    ------
    TypeError
        If ``catalog`` is neither a table nor a distribution.
    ValueError
        On unknown targets, a missing parameter or ``_err`` column, shapes
        that differ, NaN values or errors, negative errors, labels outside
        `~astromorphnet.catalog.PHYSICAL_RANGES`, or malformed bins.
    astropy.units.UnitsError
        If an error column's unit cannot be converted to the parameter's.

    See Also
    --------
    morphology_metrics : Bias, dispersion and outliers on the same bins.
    coverage_table : Coverage at any level, over all galaxies.

    Notes
    -----
    ±1σ is symmetric about the point estimate, while the predicted
    intervals of ``r_eff`` and ``sersic_n`` are not (they are built in log
    space): for those the fraction of a calibrated estimator differs
    slightly from 0.683, e.g. 0.692 for a log-normal of 0.1 dex.
    `coverage_table` measures the coverage of the intervals themselves.

    Examples
    --------
    >>> import astropy.units as u
    >>> import numpy as np
    >>> from astropy.table import QTable
    >>> from astromorphnet.metrics import error_prediction
    >>> rng = np.random.default_rng(0)
    >>> truth = QTable({"mag": rng.uniform(18, 24, 3000) * u.ABmag})
    >>> error = np.where(truth["mag"].value < 21, 0.05, 0.2)  # 2× too small when faint
    >>> catalog = QTable({"mag": truth["mag"] + rng.normal(0, 1, 3000) * error * u.mag,
    ...                   "mag_err": error / np.where(error > 0.1, 2, 1) * u.mag})
    >>> table = error_prediction(catalog, truth, mag_bins=[18, 21, 24])
    >>> table["mag_bin", "n", "mag_within_1sigma"].pprint()
       mag_bin      n   mag_within_1sigma
    -------------- ---- -----------------
    [18.00, 21.00) 1526             0.681
    [21.00, 24.00] 1474             0.377
    """
    targets, values, errors = _point_and_error(catalog, targets)
    true = _labels(y_true, targets, "y_true", check_range=True)
    if values.shape != true.shape:
        raise ValueError(f"the predictions have shape {values.shape}; y_true has "
                         f"{true.shape}: give one true row per predicted galaxy")
    edges, index = _bin(_true_magnitude(y_true, true, targets), mag_bins, len(true))
    within = np.abs(values - true) <= errors

    table = QTable()
    n_bins = 1 if edges is None else len(edges) - 1
    if edges is None:
        table["mag_bin"] = ["all"]
        low = high = np.full(1, np.nan)
    else:
        table["mag_bin"] = [f"[{edges[k]:.2f}, {edges[k + 1]:.2f}"
                            + ("]" if k == n_bins - 1 else ")") for k in range(n_bins)]
        low, high = edges[:-1], edges[1:]
    table["mag_low"] = low * u.ABmag
    table["mag_high"] = high * u.ABmag
    table["mag_low"].info.format = table["mag_high"].info.format = ".2f"
    in_bin = index[np.newaxis, :] == np.arange(n_bins)[:, np.newaxis]
    counts = in_bin.sum(axis=1)
    table["n"] = counts.astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        fractions = (in_bin.astype(np.float64) @ within) / counts[:, np.newaxis]
    for j, target in enumerate(targets):
        table[f"{target}_within_1sigma"] = fractions[:, j]
        table[f"{target}_within_1sigma"].info.format = ".3f"
    table.meta["error_prediction"] = "fraction of galaxies with |pred - true| <= err"
    table.meta["ideal"] = _ONE_SIGMA
    return table


def _check_levels(levels, what):
    """``levels`` as a 1-D float array of distinct values in (0, 1)."""
    try:
        values = np.atleast_1d(np.asarray(levels, dtype=np.float64))
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be coverages in (0, 1); got {levels!r}") from None
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"{what} must be a sequence of coverages in (0, 1); got {levels!r}")
    bad = values[~((values > 0) & (values < 1))]
    if len(bad):
        raise ValueError(f"{what} must lie in (0, 1) (a coverage such as 0.68, not 68); "
                         f"got {bad.tolist()}")
    names = [_level_name(level) for level in values]
    if len(set(names)) != len(names):
        raise ValueError(f"{what} must be distinct; got {values.tolist()}")
    return values


def _level_name(level):
    """Column suffix of a coverage: 0.68 -> "68", 0.6827 -> "68_27"."""
    return f"{100 * level:.6g}".replace(".", "_")


def _error_unit(target):
    """Unit of an error or interval width: a magnitude difference is in mag, not ABmag."""
    return u.mag if target == "mag" else TARGET_UNITS[target]


def _check_distribution(distribution, attributes):
    missing = [a for a in attributes if not hasattr(distribution, a)]
    if missing:
        raise TypeError(f"distribution must be an estimator's predict_distribution output, "
                        f"with attributes {list(attributes)}; {type(distribution).__name__} "
                        f"lacks {missing}")
    return check_targets(distribution.targets)


def _targets_and_labels(distribution, y_true):
    targets = _check_distribution(distribution, ("targets", "interval"))
    return targets, _labels(y_true, targets, "y_true", check_range=True)


def _coverage_and_width(distribution, true, levels):
    """Observed coverage and mean width, arrays ``(len(levels), n_targets)``."""
    coverage = np.empty((len(levels), true.shape[1]))
    width = np.empty_like(coverage)
    for i, level in enumerate(levels):
        lo, hi = _bounds(distribution, float(level), true.shape)
        coverage[i] = np.mean((lo <= true) & (true <= hi), axis=0)
        width[i] = np.mean(hi - lo, axis=0)
    return coverage, width


def _bounds(distribution, level, shape):
    what = f"distribution.interval({level:g})"
    lo, hi = (np.asarray(bound, dtype=np.float64) for bound in distribution.interval(level))
    for name, bound in (("lo", lo), ("hi", hi)):
        if bound.shape != shape:
            raise ValueError(f"{what} returned {name} of shape {bound.shape}; y_true has "
                             f"shape {shape}: give one true row per predicted galaxy")
        _check_nan(bound, f"{what}'s {name}")
    if np.any(lo > hi):
        raise ValueError(f"{what} returned lo > hi for {int(np.sum(lo > hi))} value(s)")
    return lo, hi


def _point_and_error(catalog, targets):
    """Targets, point estimates and 1σ errors ``(n, len(targets))`` of a catalog or distribution."""
    if isinstance(catalog, Table):
        if targets is None:
            targets = tuple(t for t in TARGETS
                            if t in catalog.colnames and f"{t}_err" in catalog.colnames)
            if not targets:
                raise ValueError(f"catalog has no parameter with its 1σ error column "
                                 f"(<param>_err, <param> among {TARGETS}); its columns are "
                                 f"{catalog.colnames}: predict with uncertainties")
        targets = check_targets(targets)
        missing = [f"{t}_err" for t in targets if f"{t}_err" not in catalog.colnames]
        if missing:
            raise ValueError(f"catalog lacks error column(s) {missing}; it has "
                             f"{catalog.colnames}")
        values = _labels(catalog, targets, "catalog", check_range=False)
        errors = np.column_stack([_error_values(catalog[f"{t}_err"], t) for t in targets])
    elif hasattr(catalog, "median") or hasattr(catalog, "error"):
        own = _check_distribution(catalog, ("targets", "median", "error"))
        targets = own if targets is None else check_targets(targets)
        unknown = [t for t in targets if t not in own]
        if unknown:
            raise ValueError(f"the distribution has no parameter(s) {unknown}; it has {own}")
        columns = [own.index(t) for t in targets]
        values, errors = (np.asarray(a, dtype=np.float64) for a in (catalog.median,
                                                                    catalog.error))
        for name, array in (("median", values), ("error", errors)):
            if array.ndim != 2 or array.shape[1] != len(own):
                raise ValueError(f"distribution.{name} must have shape (n, {len(own)}); "
                                 f"got {array.shape}")
        values, errors = values[:, columns], errors[:, columns]
        _check_nan(values, "the distribution's median")
    else:
        raise TypeError(f"catalog must be a table with <param> and <param>_err columns or "
                        f"an estimator's predict_distribution output; got "
                        f"{type(catalog).__name__}")
    _check_nan(errors, "the 1σ errors")
    if np.any(errors < 0):
        raise ValueError(f"1σ errors must be >= 0; {int(np.sum(errors < 0))} value(s) are not")
    return targets, values, errors


def _error_values(column, target):
    unit = _error_unit(target)
    if getattr(column, "unit", None) is None:
        return np.asarray(column, dtype=np.float64)
    quantity = column if isinstance(column, u.Quantity) else column.quantity
    try:
        return quantity.to_value(unit)
    except u.UnitConversionError:
        raise u.UnitsError(f"error column {target}_err has unit {quantity.unit!r}, not "
                           f"convertible to {unit!r}") from None

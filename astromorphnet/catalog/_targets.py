"""The Sérsic target parameters: label tables in, unit-carrying catalogs out."""

import datetime

import astropy.units as u
import numpy as np
from astropy.table import QTable, Table

__all__ = ["TARGETS", "TARGET_UNITS", "PHYSICAL_RANGES", "SersicCatalog", "check_targets",
           "labels_to_array", "make_catalog", "require_zeropoint"]

#: The four single-Sérsic parameters, in the column order of array labels.
TARGETS = ("mag", "r_eff", "sersic_n", "ellipticity")

#: Unit of each target in catalogs and array labels.
TARGET_UNITS = {
    "mag": u.ABmag,
    "r_eff": u.pix,
    "sersic_n": u.dimensionless_unscaled,
    "ellipticity": u.dimensionless_unscaled,
}

#: Accepted label values of each target, ``(low, high, closed_high)``, in the
#: units of `TARGET_UNITS`: a single-Sérsic fit outside these is not a
#: galaxy measurement (Sérsic indices beyond 10 are fit failures; an
#: ellipticity 1 - b/a of 1 is a line).
PHYSICAL_RANGES = {
    "mag": (-np.inf, np.inf, False),
    "r_eff": (0.0, np.inf, False),
    "sersic_n": (0.1, 10.0, True),
    "ellipticity": (0.0, 1.0, False),
}


class SersicCatalog(QTable):
    """A `~astropy.table.QTable` of Sérsic parameters that scikit-learn can consume.

    Every catalog and truth table this package returns is one.  It behaves
    as a `~astropy.table.QTable` in every way but two, both so that
    scikit-learn's model selection accepts it as labels ``y`` and as the
    output of ``predict``: ``np.asarray(catalog)`` is the float array of its
    Sérsic parameter columns (those of `TARGETS` it holds, in column order,
    in the units of `TARGET_UNITS`; 1-D when it holds one, as a
    single-output regressor's predictions are), and it indexes like an array
    (``shape``; no pandas-style ``iloc``, which scikit-learn would take for
    a pandas frame).

    Parameters
    ----------
    data, masked, names, dtype, meta, copy, rows, copy_indices, units, descriptions, **kwargs
        As for `~astropy.table.QTable`: ``SersicCatalog(table)`` wraps a
        table of one's own for scikit-learn.

    Examples
    --------
    >>> import astropy.units as u
    >>> import numpy as np
    >>> from astromorphnet.catalog import SersicCatalog
    >>> catalog = SersicCatalog({"mag": [20.0, 21.0] * u.ABmag, "r_eff": [3.0, 5.0] * u.pix,
    ...                          "flag": [0, 4]})
    >>> np.asarray(catalog)
    array([[20.,  3.],
           [21.,  5.]])
    >>> catalog.shape
    (2, 2)
    """

    @property
    def iloc(self):
        """Not available: scikit-learn takes anything with ``iloc`` for a pandas object.

        Raises
        ------
        AttributeError
            Always; index the catalog directly (``catalog[rows]``).
        """
        raise AttributeError("SersicCatalog has no pandas-style 'iloc': index it directly")

    @property
    def shape(self):
        """The shape of ``np.asarray(catalog)``: ``(rows, parameters)``, or ``(rows,)`` for one."""
        n_columns = len(self._target_columns())
        return (len(self),) if n_columns == 1 else (len(self), n_columns)

    def _target_columns(self):
        return [name for name in self.colnames if name in TARGETS]

    def __getitem__(self, item):
        # scikit-learn indexes rows of array-likes as ``array[rows, ...]``.
        if isinstance(item, tuple) and len(item) == 2 and item[1] is Ellipsis:
            item = item[0]
        return super().__getitem__(item)

    def __array__(self, dtype=None, copy=None):
        columns = [np.asarray(getattr(self[name], "value", self[name]), dtype=np.float64)
                   for name in self._target_columns()]
        if not columns:
            raise TypeError(f"this table has no Sérsic parameter column ({TARGETS}) to "
                            f"convert to an array; its columns are {self.colnames}")
        array = columns[0] if len(columns) == 1 else np.column_stack(columns)
        return array if dtype is None else array.astype(dtype, copy=False)


def check_targets(targets):
    """Return ``targets`` as a tuple after checking the names.

    Parameters
    ----------
    targets : str or sequence of str
        One target name or several, among `TARGETS`.

    Returns
    -------
    targets : tuple of str
        The names, in the order given.

    Raises
    ------
    ValueError
        If a name is unknown, repeated, or none is given.

    Examples
    --------
    >>> from astromorphnet.catalog import check_targets
    >>> check_targets("r_eff")
    ('r_eff',)
    >>> check_targets(["sersic_n", "mag"])
    ('sersic_n', 'mag')
    """
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets or len(set(targets)) != len(targets):
        raise ValueError(f"targets must be distinct names among {TARGETS}; got {targets}")
    return targets


def labels_to_array(y, targets=TARGETS, *, pixel_scale=None, allow_nan=False,
                    check_range=True):
    """Convert training labels to a float array in catalog units.

    Parameters
    ----------
    y : `~astropy.table.QTable`, `~astropy.table.Table` or array-like
        A table with one column per target (names as in `TARGETS`; units are
        converted, ``r_eff`` in angular units needs ``pixel_scale``), or an
        array ``(n, len(targets))`` in the units of `TARGET_UNITS`
        (1-D when there is a single target).
    targets : tuple of str, optional
        The target names, in output column order (default: all four).
    pixel_scale : array-like, optional
        Per-row pixel scale in arcsec/pixel (NaN where unknown).
    allow_nan : bool, optional
        Whether NaN marks an unlabelled row (domain adaptation) or is an error.
    check_range : bool, optional
        Whether values outside `PHYSICAL_RANGES` are an error (labels), or
        accepted (predictions, which may extrapolate).

    Returns
    -------
    labels : `~numpy.ndarray`
        Shape ``(n, len(targets))``, float64.

    Raises
    ------
    ValueError
        On unknown targets, missing columns, a wrong shape, NaN labels
        (unless allowed), values outside `PHYSICAL_RANGES` (when checked) or
        an ``r_eff`` in arcsec without pixel scale.
    astropy.units.UnitsError
        If a column's unit cannot be converted to the target's unit.

    Notes
    -----
    scikit-learn's cross-validation splits the tables this package returns
    (`SersicCatalog`), but not a plain astropy table (it takes ``Table.iloc``
    for a pandas frame): give `~sklearn.model_selection.GridSearchCV`
    ``SersicCatalog(table)`` or ``labels_to_array(table)`` instead.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.table import QTable
    >>> from astromorphnet.catalog import labels_to_array
    >>> truth = QTable({"mag": [20.0] * u.ABmag, "r_eff": [0.3] * u.arcsec,
    ...                 "sersic_n": [4.0], "ellipticity": [0.5]})
    >>> labels_to_array(truth, pixel_scale=[0.06])
    array([[20. ,  5. ,  4. ,  0.5]])
    """
    targets = check_targets(targets)
    if isinstance(y, Table):
        missing = [t for t in targets if t not in y.colnames]
        if missing:
            raise ValueError(f"label table lacks column(s) {missing}; it has {y.colnames}")
        labels = np.column_stack([_column_values(y[t], t, pixel_scale) for t in targets])
    else:
        labels = np.asarray(y, dtype=np.float64)
        if labels.ndim == 1 and len(targets) == 1:
            labels = labels[:, np.newaxis]
        if labels.ndim != 2 or labels.shape[1] != len(targets):
            raise ValueError(
                f"y must have shape (n, {len(targets)}) with columns {list(targets)} "
                f"(or be a table with those columns); got shape {labels.shape}")
    if len(labels) == 0:
        raise ValueError("y is empty: pass one label row per cutout")
    if np.isinf(labels).any():
        rows = np.flatnonzero(np.isinf(labels).any(axis=1))
        raise ValueError(f"y contains infinite values in {len(rows)} row(s) (first: "
                         f"{rows[:5].tolist()})")
    if not allow_nan and np.isnan(labels).any():
        rows = np.flatnonzero(np.isnan(labels).any(axis=1))
        raise ValueError(f"y contains NaN in {len(rows)} row(s) (first: {rows[:5].tolist()}); "
                         "every row needs finite labels: drop those rows")
    if check_range:
        for j, name in enumerate(targets):
            _check_range(labels[:, j], name)
    return labels


def _check_range(values, name):
    low, high, closed_high = PHYSICAL_RANGES[name]
    with np.errstate(invalid="ignore"):
        bad = (values < low) | ((values > high) if closed_high else (values >= high))
        if name == "r_eff":
            bad |= values == 0
    if bad.any():
        rows = np.flatnonzero(bad)
        upper = "]" if closed_high else ")"
        lower = "(" if name == "r_eff" else "["
        raise ValueError(
            f"{name} labels must lie in {lower}{low:g}, {high:g}{upper} "
            f"({TARGET_UNITS[name].to_string() or 'dimensionless'}); {len(rows)} row(s) do "
            f"not (first: {rows[:5].tolist()}, values {values[rows[:5]].tolist()})")


def _column_values(column, name, pixel_scale):
    unit = TARGET_UNITS[name]
    col_unit = getattr(column, "unit", None)
    if col_unit is None:
        return np.asarray(column, dtype=np.float64)
    quantity = column if isinstance(column, u.Quantity) else column.quantity
    if name == "r_eff" and quantity.unit.physical_type == "angle":
        if pixel_scale is None or np.isnan(pixel_scale).any():
            raise ValueError(
                f"r_eff labels are angles ({quantity.unit}) but the pixel scale of some "
                "rows is unknown: convert r_eff to pixels first, or, when fitting or "
                "scoring an estimator, give the cutouts a celestial WCS or set the "
                "estimator's pixel_scale")
        return quantity.to_value(u.arcsec) / np.asarray(pixel_scale)
    try:
        return quantity.to_value(unit)
    except u.UnitConversionError:
        raise u.UnitsError(
            f"label column {name!r} has unit {quantity.unit!r}, not convertible "
            f"to {unit!r}") from None


def make_catalog(values, targets, *, flag, uncertainty=None, pixel_scale=None, meta=None):
    """Build the output catalog.

    Parameters
    ----------
    values : `~numpy.ndarray`
        Shape ``(n, len(targets))`` in the units of `TARGET_UNITS`.
    targets : tuple of str
        Column names of ``values``.
    flag : `~numpy.ndarray`
        Per-row `~astromorphnet.catalog.SersicFlag` bits.
    uncertainty : tuple of `~numpy.ndarray`, optional
        ``(err, lo, hi)``, each shaped like ``values``: 1σ errors and the
        bounds of a central interval, in the units of `TARGET_UNITS`.
    pixel_scale : `~numpy.ndarray`, optional
        Per-row arcsec/pixel; adds ``r_eff_arcsec`` when any is known.
    meta : dict, optional
        Provenance merged into the table's ``meta``.

    Returns
    -------
    catalog : `SersicCatalog`
        One column per target in its unit of `TARGET_UNITS`, each followed
        (with ``uncertainty``) by ``<target>_err``, ``<target>_lo`` and
        ``<target>_hi`` (``mag_err`` in mag, a magnitude difference);
        ``r_eff_arcsec`` [arcsec] (and ``r_eff_arcsec_err``) after ``r_eff``
        when a pixel scale is known; then ``flag``; ``meta`` holds the package version,
        the creation date (UTC) and ``meta``.

    Examples
    --------
    >>> import numpy as np
    >>> from astromorphnet.catalog import make_catalog
    >>> catalog = make_catalog(np.array([[20.0, 5.0]]), ("mag", "r_eff"), flag=[0],
    ...                        pixel_scale=np.array([0.06]))
    >>> catalog.colnames
    ['mag', 'r_eff', 'r_eff_arcsec', 'flag']
    >>> catalog["r_eff_arcsec"]
    <Quantity [0.3] arcsec>
    """
    from .. import __version__

    catalog = SersicCatalog()
    err, lo, hi = uncertainty if uncertainty is not None else (None,) * 3
    for j, name in enumerate(targets):
        unit = TARGET_UNITS[name]
        catalog[name] = values[:, j] * unit
        catalog[name].info.format = ".3f"
        if err is not None:
            # An error is a difference: magnitudes differ in mag, not ABmag.
            catalog[f"{name}_err"] = err[:, j] * (u.mag if name == "mag" else unit)
            catalog[f"{name}_lo"] = lo[:, j] * unit
            catalog[f"{name}_hi"] = hi[:, j] * unit
            for suffix in ("_err", "_lo", "_hi"):
                catalog[name + suffix].info.format = ".3f"
        if name == "r_eff" and pixel_scale is not None and np.isfinite(pixel_scale).any():
            catalog["r_eff_arcsec"] = values[:, j] * pixel_scale * u.arcsec
            catalog["r_eff_arcsec"].info.format = ".4f"
            if err is not None:
                catalog["r_eff_arcsec_err"] = err[:, j] * pixel_scale * u.arcsec
                catalog["r_eff_arcsec_err"].info.format = ".4f"
    catalog["flag"] = np.asarray(flag, dtype=np.int32)
    catalog.meta.update({
        "astromorphnet_version": __version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    })
    catalog.meta.update(meta or {})
    return catalog


def require_zeropoint(zeropoint):
    """Return the zeropoint(s) as floats; raise if any is missing (NaN).

    The ``mag`` target is only defined for cutouts with a known AB zeropoint.

    Parameters
    ----------
    zeropoint : float or array-like
        AB zeropoint(s), NaN where unknown.

    Returns
    -------
    zeropoint : `~numpy.ndarray`
        The zeropoint(s) as float64 (0-d for a scalar).

    Raises
    ------
    ValueError
        If any zeropoint is NaN (unknown).

    Examples
    --------
    >>> from astromorphnet.catalog import require_zeropoint
    >>> require_zeropoint([25.94, 26.0])
    array([25.94, 26.  ])
    """
    zeropoint = np.asarray(zeropoint, float)
    if np.isnan(zeropoint).any():
        raise ValueError(
            "the 'mag' target needs the cutouts' AB zeropoint: pass zeropoint=..., give "
            "the cutouts a flux-density unit (e.g. nJy) or a MAGZERO/PHOTZP meta keyword")
    return zeropoint


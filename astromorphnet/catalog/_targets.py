"""The Sérsic target parameters: label tables in, unit-carrying catalogs out."""

import datetime

import astropy.units as u
import numpy as np
from astropy.table import QTable, Table

__all__ = ["TARGETS", "TARGET_UNITS", "check_targets", "labels_to_array", "make_catalog",
           "require_zeropoint"]

#: The four single-Sérsic parameters, in the column order of array labels.
TARGETS = ("mag", "r_eff", "sersic_n", "ellipticity")

#: Unit of each target in catalogs and array labels.
TARGET_UNITS = {
    "mag": u.ABmag,
    "r_eff": u.pix,
    "sersic_n": u.dimensionless_unscaled,
    "ellipticity": u.dimensionless_unscaled,
}


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


def labels_to_array(y, targets=TARGETS, *, pixel_scale=None, allow_nan=False):
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

    Returns
    -------
    labels : `~numpy.ndarray`
        Shape ``(n, len(targets))``, float64.

    Raises
    ------
    ValueError
        On unknown targets, missing columns, a wrong shape, NaN labels
        (unless allowed) or an ``r_eff`` in arcsec without pixel scale.
    astropy.units.UnitsError
        If a column's unit cannot be converted to the target's unit.

    Notes
    -----
    scikit-learn's cross-validation cannot split an astropy table (it takes
    ``Table.iloc`` for a pandas frame): give `~sklearn.model_selection.GridSearchCV`
    ``labels_to_array(truth)`` instead of the table.

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
        raise ValueError("y contains infinite values")
    if not allow_nan and np.isnan(labels).any():
        rows = np.flatnonzero(np.isnan(labels).any(axis=1))
        raise ValueError(
            f"y contains NaN in {len(rows)} row(s) (first: {rows[:5].tolist()}); drop "
            "unlabelled galaxies, or train with AdversarialDARegressor(supervised=False)")
    return labels


def _column_values(column, name, pixel_scale):
    unit = TARGET_UNITS[name]
    col_unit = getattr(column, "unit", None)
    if col_unit is None:
        return np.asarray(column, dtype=np.float64)
    quantity = column if isinstance(column, u.Quantity) else column.quantity
    if name == "r_eff" and quantity.unit.physical_type == "angle":
        if pixel_scale is None or np.isnan(pixel_scale).any():
            raise ValueError(
                "r_eff labels are angles but some cutouts have no pixel scale: "
                "give cutouts a celestial WCS or pass pixel_scale=...")
        return quantity.to_value(u.arcsec) / np.asarray(pixel_scale)
    try:
        return quantity.to_value(unit)
    except u.UnitConversionError:
        raise u.UnitsError(
            f"label column {name!r} has unit {quantity.unit!r}, not convertible "
            f"to {unit!r}") from None


def make_catalog(values, targets, *, flag, pixel_scale=None, meta=None):
    """Build the output catalog.

    Parameters
    ----------
    values : `~numpy.ndarray`
        Shape ``(n, len(targets))`` in the units of `TARGET_UNITS`.
    targets : tuple of str
        Column names of ``values``.
    flag : `~numpy.ndarray`
        Per-row `~astromorphnet.catalog.SersicFlag` bits.
    pixel_scale : `~numpy.ndarray`, optional
        Per-row arcsec/pixel; adds ``r_eff_arcsec`` when any is known.
    meta : dict, optional
        Provenance merged into the table's ``meta``.

    Returns
    -------
    catalog : `~astropy.table.QTable`
        One column per target in its unit of `TARGET_UNITS`, then
        ``r_eff_arcsec`` [arcsec] (when ``r_eff`` is a target and a pixel
        scale is known), and ``flag``; ``meta`` holds the package version,
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

    catalog = QTable()
    for j, name in enumerate(targets):
        catalog[name] = values[:, j] * TARGET_UNITS[name]
        catalog[name].info.format = ".3f"
        if name == "r_eff" and pixel_scale is not None and np.isfinite(pixel_scale).any():
            catalog["r_eff_arcsec"] = values[:, j] * pixel_scale * u.arcsec
            catalog["r_eff_arcsec"].info.format = ".4f"
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


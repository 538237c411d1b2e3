"""Catalog selections: magnitude cuts and matching parameter ranges between sets.

The reference thesis keeps real galaxies with m <= 23 for transfer learning
and matches the parameter ranges of its simulated and real sets (its Tables
3.1 and 3.2); these helpers return boolean row masks for such selections.
"""

from collections.abc import Mapping

import astropy.units as u
import numpy as np

from ..catalog._targets import TARGET_UNITS, TARGETS

__all__ = ["match_parameter_ranges", "parameter_ranges", "select_magnitude"]


def select_magnitude(table, max_mag=23.0, *, column="mag"):
    """Rows of ``table`` no fainter than ``max_mag``.

    Parameters
    ----------
    table : `~astropy.table.Table` or `~astropy.table.QTable`
        A catalog with a magnitude column.
    max_mag : float or `~astropy.units.Quantity`, optional
        Faintest AB magnitude kept (inclusive).  The reference thesis drops
        galaxies with m > 23 from its transfer-learning sets.
    column : str, optional
        Name of the magnitude column: AB magnitudes (``u.ABmag``) or plain
        floats read as AB magnitudes.

    Returns
    -------
    keep : `~numpy.ndarray`
        Boolean, one per row; False for NaN (or masked) magnitudes.

    Raises
    ------
    ValueError
        If ``column`` is missing.
    astropy.units.UnitsError
        If the column's (or ``max_mag``'s) unit is not an AB magnitude.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.table import QTable
    >>> from astromorphnet.cutouts import select_magnitude
    >>> catalog = QTable({"mag": [21.0, 23.0, 24.5] * u.ABmag})
    >>> select_magnitude(catalog).tolist()
    [True, True, False]
    """
    mags = _column_values(table, column, TARGET_UNITS["mag"])
    limit = _to_value(max_mag, TARGET_UNITS["mag"], "max_mag")
    with np.errstate(invalid="ignore"):
        return mags <= limit


def parameter_ranges(table, *, columns=TARGETS):
    """The ``(min, max)`` of each column, ignoring NaN.

    Parameters
    ----------
    table : `~astropy.table.Table` or `~astropy.table.QTable`
        A catalog.
    columns : sequence of str, optional
        Columns to measure (default: the four Sérsic targets).

    Returns
    -------
    ranges : dict
        ``{name: (low, high)}`` as plain floats in catalog units (``mag`` in
        AB magnitudes, ``r_eff`` in pixels, others as given), the form of
        the ``ranges`` argument of `~astromorphnet.simulation.draw_parameters`
        and `~astromorphnet.simulation.simulate_galaxies`.

    Raises
    ------
    ValueError
        If a column is missing or holds no finite value.
    astropy.units.UnitsError
        If a column's unit cannot be converted to its catalog unit (e.g.
        ``r_eff`` in arcsec: convert it to pixels first).

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.table import QTable
    >>> from astromorphnet.cutouts import parameter_ranges
    >>> real = QTable({"mag": [19.5, 22.0] * u.ABmag, "r_eff": [2.0, 9.5] * u.pix})
    >>> parameter_ranges(real, columns=("mag", "r_eff"))
    {'mag': (19.5, 22.0), 'r_eff': (2.0, 9.5)}
    """
    ranges = {}
    for name in _names(columns):
        values = _column_values(table, name, TARGET_UNITS.get(name))
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            raise ValueError(f"column {name!r} holds no finite value: its range is undefined")
        ranges[name] = (float(finite.min()), float(finite.max()))
    return ranges


def match_parameter_ranges(table, reference, *, columns=TARGETS):
    """Rows of ``table`` whose every column lies within ``reference``'s range.

    Use it to restrict a simulated set to the ranges of a real one (or the
    reverse) before training or comparing them.

    Parameters
    ----------
    table : `~astropy.table.Table` or `~astropy.table.QTable`
        The catalog to select from.
    reference : `~astropy.table.Table`, `~astropy.table.QTable` or dict
        A catalog whose ``[min, max]`` per column bounds the selection, or
        ranges ``{name: (low, high)}`` (e.g. from `parameter_ranges`, or
        `~astromorphnet.simulation.THESIS_RANGES`).
    columns : sequence of str, optional
        Columns to match (default: the four Sérsic targets).

    Returns
    -------
    keep : `~numpy.ndarray`
        Boolean, one per row of ``table``; bounds are inclusive and NaN
        values never match.

    Raises
    ------
    ValueError
        If a column is missing from either side, a range is not a
        ``(low, high)`` pair with low <= high, or a reference column holds
        no finite value.
    astropy.units.UnitsError
        If a column's unit cannot be converted to its catalog unit (or, for
        other columns, to the table's unit).

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.table import QTable
    >>> from astromorphnet.cutouts import match_parameter_ranges
    >>> sims = QTable({"mag": [18.0, 21.0, 25.0] * u.ABmag, "sersic_n": [0.5, 2.0, 4.0]})
    >>> real = QTable({"mag": [19.0, 23.0] * u.ABmag, "sersic_n": [1.0, 5.0]})
    >>> match_parameter_ranges(sims, real, columns=("mag", "sersic_n")).tolist()
    [False, True, False]
    """
    names = _names(columns)
    keep = np.ones(len(table), bool)
    for name in names:
        col = _column(table, name, "table")
        unit = TARGET_UNITS.get(name, getattr(col, "unit", None))
        values = _column_values(table, name, unit)
        if isinstance(reference, Mapping):
            low, high = _range(reference, name, unit)
        else:
            ref = _column_values(reference, name, unit, "reference")
            ref = ref[np.isfinite(ref)]
            if ref.size == 0:
                raise ValueError(f"reference column {name!r} holds no finite value: its "
                                 "range is undefined")
            low, high = ref.min(), ref.max()
        with np.errstate(invalid="ignore"):
            keep &= (values >= low) & (values <= high)
    return keep


def _names(columns):
    names = (columns,) if isinstance(columns, str) else tuple(columns)
    if not names:
        raise ValueError("columns is empty: name at least one column")
    return names


def _column(table, name, what="table"):
    try:
        return table[name]
    except KeyError:
        have = list(getattr(table, "colnames", table))
        raise ValueError(f"{what} has no column {name!r}; its columns are {have}") from None


def _column_values(table, name, unit, what="table"):
    """A column as a float array in ``unit`` (unitless columns are taken as is)."""
    col = _column(table, name, what)
    col_unit = getattr(col, "unit", None)
    if col_unit is not None and unit is not None:
        quantity = col if isinstance(col, u.Quantity) else col.quantity
        values = _to_value(quantity, unit, f"{what} column {name!r}")
    else:
        values = getattr(col, "value", col)
    return np.ma.filled(np.ma.asarray(values, dtype=float), np.nan)


def _range(ranges, name, unit):
    if name not in ranges:
        raise ValueError(f"the reference ranges have no entry {name!r}; they have "
                         f"{list(ranges)}")
    pair = ranges[name]
    if np.ndim(pair) != 1 or len(pair) != 2:
        raise ValueError(f"reference range {name!r} must be a (low, high) pair; got {pair!r}")
    low, high = (_to_value(v, unit, f"reference range {name!r}") for v in pair)
    if not low <= high:
        raise ValueError(f"reference range {name!r} ({low}, {high}) is empty: low must be "
                         "<= high")
    return low, high


def _to_value(value, unit, what):
    """Strip ``value``'s unit after converting it to ``unit``; plain numbers pass."""
    if getattr(value, "unit", None) is None or unit is None:
        return getattr(value, "value", value)
    try:
        return value.to_value(unit)
    except u.UnitsError:
        hint = (" (convert sizes to pixels with the pixel scale first)"
                if u.Unit(unit) == u.pix else "")
        raise u.UnitsError(f"{what} is in {value.unit}, which cannot be converted to "
                           f"{unit}{hint}") from None

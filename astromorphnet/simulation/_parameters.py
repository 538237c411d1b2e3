"""Galaxy parameter tables: ranges, distributions, validation."""

import numbers
from collections.abc import Mapping

import astropy.units as u
import numpy as np

from ..catalog._targets import TARGET_UNITS, TARGETS, SersicCatalog, labels_to_array

__all__ = ["THESIS_RANGES", "check_truth", "draw_parameters"]

# The flattest galaxy drawn.  Ellipticity 1 (b/a = 0) is a line, which
# GalSim cannot shear a profile into, and galaxies near it are unresolved
# slivers; b/a >= 0.05 keeps them drawable.
_MAX_ELLIPTICITY = 0.95
_ELLIPTICITY_LIMITS = (f"[0, {_MAX_ELLIPTICITY}]: b/a = 1 - ellipticity must stay >= "
                       f"{1 - _MAX_ELLIPTICITY:.2f} (ellipticity 1 is a line, which cannot "
                       "be drawn)")

#: Parameter ranges of the reference thesis's simulations (its Table 3.2),
#: for HST/CANDELS F160W 128×128 stamps at 0.06"/pixel.  The table lists
#: ellipticity 0–1; the range stops at 0.95, the flattest galaxy that can be
#: drawn (b/a >= 0.05).
THESIS_RANGES = {
    "mag": (16.0, 27.0),
    "r_eff": (1.3, 50.2),
    "sersic_n": (0.3, 6.2),
    "ellipticity": (0.0, _MAX_ELLIPTICITY),
}

# GalSim's Sérsic is defined for 0.3 <= n <= 6.2; the last digit of round-off
# at 6.2 trips its range check, hence the margin.
_N_LIMITS = (0.3, 6.2 - 1e-9)


def draw_parameters(n, ranges=None, *, random_state=None):
    """Draw galaxy parameters uniformly within ranges.

    Parameters
    ----------
    n : int
        Number of galaxies.
    ranges : dict, optional
        ``{name: (low, high)}`` (uniform) or ``{name: (low, high, "log")}``
        (log-uniform) for ``mag`` (AB), ``r_eff`` (pix, semi-major axis),
        ``sersic_n``, ``ellipticity`` (1 - b/a, at most 0.95: flatter
        galaxies cannot be drawn); missing names take `THESIS_RANGES`.
        To draw from your own distribution, build the table yourself and
        pass it as ``truth`` to `simulate_galaxies` (checked by `check_truth`).
    random_state : int, `~numpy.random.RandomState` or None
        Seed.

    Returns
    -------
    truth : `~astropy.table.QTable`
        Columns ``mag`` [ABmag], ``r_eff`` [pix], ``sersic_n``,
        ``ellipticity``, position angle ``pa`` [deg] and the centre's offset
        ``dx``, ``dy`` [pix] from the stamp centre (uniform in ±0.5).

    Raises
    ------
    ValueError
        If ``n`` is not an integer >= 0, or a range is not a pair of finite
        numbers ``low <= high`` (with an optional ``"log"``), unknown, or
        outside what can be drawn (``sersic_n`` outside 0.3–6.2, ``r_eff``
        <= 0, ellipticity outside [0, 0.95]).

    Examples
    --------
    >>> from astromorphnet.simulation import draw_parameters
    >>> truth = draw_parameters(3, {"sersic_n": (1, 4)}, random_state=1)
    >>> truth.colnames
    ['mag', 'r_eff', 'sersic_n', 'ellipticity', 'pa', 'dx', 'dy']
    """
    n = _check_count("n", n, minimum=0)
    if ranges is not None and not isinstance(ranges, Mapping):
        raise ValueError(f"ranges must be a dict {{name: (low, high)}}; got {ranges!r}")
    ranges = {**THESIS_RANGES, **(ranges or {})}
    unknown = set(ranges) - set(THESIS_RANGES)
    if unknown:
        raise ValueError(f"unknown parameter range(s) {sorted(unknown)}; "
                         f"expected names among {list(THESIS_RANGES)}")
    ranges = {name: _parse_range(name, spec) for name, spec in ranges.items()}
    if not (_N_LIMITS[0] <= ranges["sersic_n"][0] and ranges["sersic_n"][1] <= 6.2):
        raise ValueError(f"sersic_n range {ranges['sersic_n'][:2]} is outside GalSim's "
                         "valid 0.3-6.2")
    if ranges["r_eff"][0] <= 0:
        raise ValueError(f"r_eff range {ranges['r_eff'][:2]} must be positive (pixels)")
    if not (ranges["ellipticity"][0] >= 0 and ranges["ellipticity"][1] <= _MAX_ELLIPTICITY):
        raise ValueError(f"ellipticity range {ranges['ellipticity'][:2]} must lie in "
                         f"{_ELLIPTICITY_LIMITS}")
    # Imported here, not with the module: scikit-learn adds about a fifth to
    # the start-up of the worker processes, which only render.
    from sklearn.utils import check_random_state

    rng = check_random_state(random_state)
    truth = SersicCatalog()
    for name, unit in (("mag", u.ABmag), ("r_eff", u.pix), ("sersic_n", None),
                       ("ellipticity", None)):
        low, high, log = ranges[name]
        values = 10 ** rng.uniform(np.log10(low), np.log10(high), n) if log else rng.uniform(
            low, high, n)
        if name == "sersic_n":
            values = np.clip(values, *_N_LIMITS)
        truth[name] = values if unit is None else values * unit
    truth["pa"] = rng.uniform(0.0, 180.0, n) * u.deg
    truth["dx"] = rng.uniform(-0.5, 0.5, n) * u.pix
    truth["dy"] = rng.uniform(-0.5, 0.5, n) * u.pix
    return truth


def _check_count(name, value, minimum=1):
    """``value`` as an int, checked to be an integer >= ``minimum`` (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_number(name, value, minimum=-np.inf, *, strict=False):
    """``value`` as a float, checked to be a finite number >= ``minimum`` (> if ``strict``)."""
    if not (_is_number(value) and np.isfinite(value)
            and (value > minimum if strict else value >= minimum)):
        bound = "" if minimum == -np.inf else f" {'>' if strict else '>='} {minimum:g}"
        raise ValueError(f"{name} must be a finite number{bound}; got {value!r}")
    return float(value)


def _parse_range(name, spec):
    """``(low, high, log)`` of a range given as ``(low, high)`` or ``(low, high, kind)``."""
    form = (f"{name} range must be (low, high) or (low, high, 'log') with finite numbers "
            f"low <= high")
    if isinstance(spec, (str, bytes)) or not isinstance(spec, (tuple, list, np.ndarray)):
        raise ValueError(f"{form}; got {spec!r}")
    spec = tuple(spec)
    kind = spec[2] if len(spec) == 3 else "uniform"
    if len(spec) not in (2, 3) or not isinstance(kind, str) or kind not in ("log", "uniform"):
        raise ValueError(f"{form}; got {spec!r}")
    low, high = spec[:2]
    if not (_is_number(low) and _is_number(high) and np.isfinite([low, high]).all()):
        raise ValueError(f"{form}; got {spec!r}: not finite numbers")
    if low > high:
        raise ValueError(f"{form}; got {spec!r}: reversed (low > high)")
    if kind == "log" and not low > 0:
        raise ValueError(f"{name}: a log-uniform range needs low > 0; got {spec!r}")
    return (float(low), float(high), kind == "log")


def check_truth(truth):
    """Check a user-supplied parameter table before drawing it.

    Parameters
    ----------
    truth : `~astropy.table.Table`
        Columns ``mag``, ``r_eff``, ``sersic_n``, ``ellipticity`` (with or
        without units; ``r_eff`` in pixels) and optionally ``pa`` [deg],
        ``dx``, ``dy`` [pix].

    Returns
    -------
    truth : `~astropy.table.QTable`
        A copy with units.

    Raises
    ------
    ValueError
        If a column is missing, empty, not finite (NaN, inf), or outside
        what can be drawn.

    Examples
    --------
    >>> from astropy.table import QTable
    >>> from astromorphnet.simulation import check_truth
    >>> check_truth(QTable({"mag": [20.0], "r_eff": [3.0], "sersic_n": [7.0],
    ...                     "ellipticity": [0.2]}))
    Traceback (most recent call last):
    ...
    ValueError: sersic_n values must lie in GalSim's valid 0.3-6.2; got 7 to 7
    """
    values = labels_to_array(truth, TARGETS)
    checks = {"r_eff": (1e-6, np.inf), "sersic_n": (0.3, 6.2),
              "ellipticity": (0.0, _MAX_ELLIPTICITY)}
    limits_text = {"r_eff": "> 0 (pixels)", "sersic_n": "GalSim's valid 0.3-6.2",
                   "ellipticity": _ELLIPTICITY_LIMITS}
    for j, name in enumerate(TARGETS):
        _check_finite(name, values[:, j])
        low, high = checks.get(name, (-np.inf, np.inf))
        if values[:, j].min() < low or values[:, j].max() > high:
            raise ValueError(f"{name} values must lie in {limits_text[name]}; got "
                             f"{values[:, j].min():g} to {values[:, j].max():g}")
    out = SersicCatalog()
    for j, name in enumerate(TARGETS):
        out[name] = values[:, j] * (TARGET_UNITS[name])
    out["sersic_n"] = np.clip(values[:, 2], *_N_LIMITS)
    for name, unit in (("pa", u.deg), ("dx", u.pix), ("dy", u.pix)):
        if name in truth.colnames:
            out[name] = u.Quantity(truth[name], unit)
            _check_finite(name, out[name].value)
    return out


def _check_finite(name, values):
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(f"{name} values must be finite numbers; row(s) {bad[:5].tolist()} "
                         f"hold {values[bad[:5]].tolist()}")

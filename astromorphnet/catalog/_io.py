"""Writing catalogs: the format from the file name, atomically, FITS without warnings."""

import json
import os
import re
import unicodedata
import uuid
import warnings

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import QTable, Table
from astropy.utils.exceptions import AstropyUserWarning

__all__ = ["CATALOG_FORMATS", "catalog_format", "write_catalog"]

#: File-name endings `write_catalog` accepts (lower case), and the astropy format of each.
CATALOG_FORMATS = {
    ".fits": "fits", ".fit": "fits", ".fts": "fits",
    ".fits.gz": "fits", ".fit.gz": "fits", ".fts.gz": "fits",
    ".ecsv": "ascii.ecsv",
    ".parquet": "parquet",
    ".csv": "ascii.csv",
}
#: A FITS header card holds 80 characters: ``HIERARCH key = value`` needs room for a value.
_MAX_FITS_KEY = 60
#: Header keywords astropy writes itself, which table meta must not override.
_RESERVED = re.compile(r"(SIMPLE|XTENSION|BITPIX|NAXIS\d*|PCOUNT|GCOUNT|TFIELDS|END|THEAP"
                       r"|T(TYPE|FORM|UNIT|NULL|SCAL|ZERO|DISP|DIM)\d+)")
#: Column comments of a catalog read from FITS: they described its columns, set anew here.
_COLUMN_COMMENT = re.compile(r"TCOMM\d+")


def catalog_format(path):
    """The astropy format that `write_catalog` uses for ``path``.

    Parameters
    ----------
    path : str or path-like
        A catalog file name.

    Returns
    -------
    format : str
        ``"fits"``, ``"ascii.ecsv"``, ``"parquet"`` or ``"ascii.csv"``.

    Raises
    ------
    ValueError
        If the name ends in none of the accepted extensions
        (`CATALOG_FORMATS`).

    Examples
    --------
    >>> from astromorphnet.catalog import catalog_format
    >>> catalog_format("galaxies.fits.gz"), catalog_format("galaxies.ecsv")
    ('fits', 'ascii.ecsv')
    """
    name = os.fspath(path).lower()
    # Longest ending first: ".fits.gz" before ".gz"-less ".fits".
    for ending in sorted(CATALOG_FORMATS, key=len, reverse=True):
        if name.endswith(ending):
            return CATALOG_FORMATS[ending]
    raise ValueError(f"cannot tell the catalog format of {os.fspath(path)!r} from its "
                     f"extension; use one of {', '.join(CATALOG_FORMATS)}")


def write_catalog(table, path, *, overwrite=False):
    """Write a catalog, its format given by the file name, all or nothing.

    The table is written to a temporary file in the destination folder and
    renamed over ``path`` only once complete, so a failure (or an
    interruption) never leaves a partial catalog nor destroys an existing
    one.  FITS catalogs are written without warnings, readable by any FITS
    reader and read back by `~astropy.table.QTable.read` with their units
    and sky coordinates:

    - a `~astropy.coordinates.SkyCoord` column becomes ``ra``/``dec``
      columns (ICRS, degrees; in CSV files too), or is dropped when the table has ``ra`` and
      ``dec`` columns holding the same positions already; a second one
      becomes ``<name>_ra``/``<name>_dec``;
    - a column whose unit has no FITS form (``mag(AB)``) has it in its
      ``TCOMM`` comment instead of ``TUNIT``; astropy reads it back;
    - ``meta`` keys longer than 8 characters, or with characters a FITS
      keyword cannot hold, become ``HIERARCH`` cards; values a header card
      cannot hold (dicts, lists, tuples, NaN, quantities) are written as
      JSON text; text is made ASCII, as FITS requires ("Sérsic" becomes
      "Sersic", other characters Python escapes such as ``\\u03bc``).

    Parameters
    ----------
    table : `~astropy.table.Table`
        The catalog (e.g. from `~astromorphnet.measure` or ``predict``).
    path : str or path-like
        Destination; the extension sets the format: ``.fits``, ``.fit``,
        ``.fts`` (optionally ``.gz``-compressed), ``.ecsv``, ``.parquet``
        (needs pyarrow) or ``.csv`` (no units).
    overwrite : bool, optional
        Replace an existing file (once the new one is complete).

    Returns
    -------
    path : str
        The file written.

    Raises
    ------
    TypeError
        If ``table`` is not an astropy table.
    ValueError
        If the extension is not one of those accepted, or (FITS) a ``meta``
        key is too long for a header card.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    FileNotFoundError, IsADirectoryError
        If the destination folder does not exist, or ``path`` is a folder.

    Examples
    --------
    >>> import os, tempfile
    >>> import astropy.units as u
    >>> from astropy.table import QTable
    >>> from astromorphnet.catalog import write_catalog
    >>> catalog = QTable({"mag": [21.3, 22.0] * u.ABmag}, meta={"model_name": "demo"})
    >>> path = write_catalog(catalog, os.path.join(tempfile.mkdtemp(), "galaxies.fits"))
    >>> QTable.read(path)["mag"].unit
    Unit("mag(AB)")
    """
    if not isinstance(table, Table):
        raise TypeError(f"table must be an astropy Table or QTable; got {type(table).__name__}")
    path = os.fspath(path)
    fmt = catalog_format(path)
    _check_destination(path, overwrite)
    prepared = table
    if fmt in ("fits", "ascii.csv"):
        # Neither holds a SkyCoord as one column (CSV would write "ra,dec" strings).
        prepared = _without_skycoords(table)
    if fmt == "fits":
        prepared.meta = _fits_meta(table.meta)
    folder, name = os.path.split(os.path.abspath(path))
    # Same folder (so the rename is atomic), same ending (astropy compresses a .gz name).
    tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.tmp{_suffix(name)}")
    try:
        if fmt == "fits":
            _write_fits(prepared, tmp)
        else:
            prepared.write(tmp, format=fmt)
        os.replace(tmp, path)
    except BaseException:
        # KeyboardInterrupt included: no temporary file left behind.
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def _suffix(name):
    """The catalog extension ``name`` ends in (as written)."""
    lower = name.lower()
    ending = next(ending for ending in sorted(CATALOG_FORMATS, key=len, reverse=True)
                  if lower.endswith(ending))
    return name[-len(ending):]


def _check_destination(path, overwrite):
    """Refuse, before writing, a destination that cannot or must not be written."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder; give the name of the catalog file")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: folder {folder} does not exist")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")


# -- FITS ----------------------------------------------------------------------------
def _without_skycoords(table):
    """A copy of ``table`` (sharing its data) with ra/dec columns for its SkyCoords."""
    out = QTable(table, copy=False)
    for name in [n for n in out.colnames if isinstance(out[n], SkyCoord)]:
        _replace_skycoord(out, name)
    return out


def _fits_meta(meta):
    """``meta`` as FITS header cards hold it."""
    out = {}
    for key, value in meta.items():
        if _COLUMN_COMMENT.fullmatch(str(key).upper()):
            continue
        if key in ("comments", "history") and _is_string_list(value):
            out[key] = [_ascii(v) for v in value]  # astropy writes COMMENT/HISTORY cards
        else:
            out[_fits_key(_ascii(str(key)))] = _fits_value(value)
    return out


def _replace_skycoord(table, name):
    icrs = table[name].icrs
    ra, dec = icrs.ra.to(u.deg), icrs.dec.to(u.deg)
    index = table.colnames.index(name)
    table.remove_column(name)
    if {"ra", "dec"} <= set(table.colnames) and _same(table["ra"], ra) and _same(table["dec"], dec):
        return  # the positions are there already
    prefix = "" if not {"ra", "dec"} & set(table.colnames) else f"{name}_"
    table.add_column(ra, name=f"{prefix}ra", index=index)
    table.add_column(dec, name=f"{prefix}dec", index=index + 1)


def _same(column, angles):
    try:
        values = u.Quantity(column, u.deg)
    except (u.UnitsError, TypeError):
        return False
    return bool(np.allclose(values, angles, rtol=0, atol=1e-9 * u.deg, equal_nan=True))


def _is_string_list(value):
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def _fits_key(key):
    """``key`` as a header keyword: itself when standard, else a HIERARCH keyword."""
    if _RESERVED.fullmatch(key.upper()):
        raise ValueError(f"meta key {key!r} is a keyword of the FITS table structure; "
                         "rename it, or write the catalog as .ecsv or .parquet")
    if len(key) <= 8 and re.fullmatch(r"[A-Z0-9_-]+", key.upper()):
        return key
    if len(key) > _MAX_FITS_KEY or "=" in key:
        raise ValueError(f"meta key {key!r} cannot be a FITS header keyword (at most "
                         f"{_MAX_FITS_KEY} characters, no '='); rename it, or write the "
                         "catalog as .ecsv or .parquet, which keep any meta")
    return f"HIERARCH {key}"


def _fits_value(value):
    """``value`` as a header card holds it: itself, or JSON text."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)  # FITS headers cannot hold NaN or infinity
    if isinstance(value, str):
        return _ascii(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return json.dumps(value, default=_jsonable)


def _ascii(text):
    """``text`` in the printable ASCII of FITS headers: "Sérsic" → "Sersic", "μ" → "\\u03bc"."""
    decomposed = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in decomposed if not unicodedata.combining(c))
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if c.isprintable() else " " for c in text)


def _jsonable(value):
    if isinstance(value, u.Quantity):
        return str(value)
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return str(value)


def _write_fits(table, path):
    units = {}
    for i, name in enumerate(table.colnames, start=1):
        unit = getattr(table[name], "unit", None)
        if unit is not None and _fits_unit(unit) is None:
            units[i] = unit
    with warnings.catch_warnings():
        # Only for the units handled below, whose FITS form replaces astropy's.
        for unit in units.values():
            warnings.filterwarnings("ignore", message=re.escape(f"The unit '{unit.to_string()}' "
                                    "could not be saved in native FITS format"),
                                    category=AstropyUserWarning)
        table.write(path, format="fits", overwrite=True)
    if units:
        # No TUNIT: astropy would read it over the unit it serialised (and
        # fail to rebuild a magnitude); TCOMM tells other readers.
        with fits.open(path, mode="update") as hdus:
            header = hdus[1].header
            for i, unit in units.items():
                header.set(f"TCOMM{i}", f"unit: {unit.to_string()}", after=f"TFORM{i}")


def _fits_unit(unit):
    """The FITS form of ``unit``, or None when it has none."""
    try:
        return unit.to_string("fits")
    except (ValueError, u.UnitsError):
        return None

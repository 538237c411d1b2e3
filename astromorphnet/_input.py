"""The input layer: every estimator and transformer reads its cutouts here.

Users hand over cutouts in many forms (a list of `~astropy.nddata.NDData` or
`~astropy.nddata.CCDData`, one `~astropy.nddata.NDData` holding a 3-D stack, a
NumPy array or `~astropy.units.Quantity`).  `as_stamps` validates them once and
returns a `Stamps` object that materialises model-ready batches lazily, so a
large memory-mapped array is never copied whole.

Zeropoints come from three places, most trusted first: a flux-density (or,
given the pixel scale, surface-brightness) pixel unit, which fixes the AB
zeropoint exactly; a cutout's own ``meta`` (``MAGZERO``, ``PHOTZP``, ...),
which refers to that cutout's pixels in its own unit; and the ``zeropoint``
keyword, which refers to the pixel unit the cutouts are finally read in (for
an estimator, the unit seen at fit time), so that the same galaxy given in
electron/s or electron/min gets the same magnitude.
"""

import os
import warnings
from collections import namedtuple

import astropy.units as u
import numpy as np
from astropy.nddata import MissingDataAssociationException, NDData, StdDevUncertainty
from astropy.nddata.utils import overlap_slices
from astropy.stats import mad_std
from astropy.units import photometric
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy.sparse import issparse

from .catalog._flags import MASKED_FRACTION_LIMIT, SersicFlag

__all__ = ["Batch", "Stamps", "as_stamps", "check_unit"]

#: FITS header / meta keywords read as a cutout's AB zeropoint, in this order.
ZEROPOINT_KEYS = ("zeropoint", "MAGZERO", "PHOTZP", "MAGZPT")

#: Unit conversions: maggies (SDSS, Legacy Survey) are fluxes relative to AB's zeropoint.
_EQUIVALENCIES = u.zero_point_flux(photometric.AB)

#: A meta zeropoint differing more than this (mag) from its flux unit's is reported.
ZEROPOINT_TOLERANCE = 1e-3

#: What each astropy ``uncertainty_type`` holds, for error messages.
_UNCERTAINTY_NAMES = {"std": "standard deviation", "var": "variance",
                      "ivar": "inverse variance"}

#: The uncertainty classes `as_stamps` reads, for error messages.
_UNCERTAINTY_HINT = ("wrap it in astropy.nddata.StdDevUncertainty (standard deviations), "
                     "VarianceUncertainty or InverseVariance (weights)")

Batch = namedtuple("Batch", ["data", "mask", "std", "flag"])
Batch.__doc__ = """Cutouts cropped/padded to one shape; masked pixels of ``data`` are 0."""


class Stamps:
    """A validated set of cutouts read in batches of a common shape.

    Do not build one directly: use `as_stamps`.  Either ``stack`` (an array
    ``(n, ny, nx)``, possibly memory-mapped) or ``items`` (a list of 2-D
    ``(data, mask, std)`` triples, for cutouts of different shapes) holds the
    pixels; the per-cutout arrays have length ``n``.  ``zeropoint`` holds
    the zeropoints known from meta or unit (NaN: unknown), in ``unit``;
    ``zeropoint_default`` (the ``zeropoint`` keyword) fills the unknown ones;
    ``source_unit`` holds each cutout's own unit while a list mixed units
    (None once all were given in ``unit``, or after `convert_to`), the unit
    ``zeropoint_default`` refers to until then.
    """

    def __init__(self, *, stack=None, stack_mask=None, stack_std=None, items=None,
                 unit=None, pixel_scale, zeropoint, flag, zeropoint_default=np.nan,
                 source_unit=None):
        self._stack = stack
        self._stack_mask = stack_mask
        self._stack_std = stack_std
        self._items = items
        self.unit = _pixel_unit(unit)
        self.pixel_scale = pixel_scale
        self._zeropoint = np.asarray(zeropoint, float)
        self._zeropoint_default = zeropoint_default
        self._source_unit = source_unit
        self.flag = flag
        self._scale = 1.0

    def __len__(self):
        return len(self.flag)

    @property
    def zeropoint(self):
        """Per-cutout AB zeropoint of the pixels in `unit` (NaN: unknown).

        Raises
        ------
        ValueError
            If the ``zeropoint`` keyword fills cutouts given in several units
            and no `convert_to` said which unit it refers to.
        """
        missing = np.isnan(self._zeropoint)
        default = self._zeropoint_default
        if self._source_unit is not None and not np.isnan(default) and missing.any():
            units = set(self._source_unit[missing])
            if len(units) > 1:
                raise ValueError(
                    f"zeropoint={default} is ambiguous: the cutouts without a meta "
                    f"zeropoint come in several units ({', '.join(sorted(map(str, units)))}) "
                    "and a zeropoint refers to pixels in one unit; give them one unit, or "
                    "each its own meta['zeropoint']")
            # Not yet converted: it refers to the unit those cutouts were given in.
            default = default + 2.5 * np.log10(check_unit(units.pop(), self.unit))
        return np.where(missing, default, self._zeropoint)

    @property
    def on_disk(self):
        """Whether the pixels are read from disk on demand (h5py, zarr, memmap)."""
        return self._stack is not None and (not isinstance(self._stack, np.ndarray)
                                            or isinstance(self._stack, np.memmap))

    @property
    def shapes(self):
        """The distinct native cutout shapes, most common first."""
        if self._stack is not None:
            return [tuple(self._stack.shape[1:])]
        shapes, counts = np.unique([item[0].shape for item in self._items], axis=0,
                                   return_counts=True)
        return [tuple(int(s) for s in shapes[i]) for i in np.argsort(-counts, kind="stable")]

    def take(self, indices):
        """The cutouts at ``indices``, as a new in-memory `Stamps`.

        Parameters
        ----------
        indices : array-like of int
            Positions of the cutouts to keep, in the order wanted.

        Returns
        -------
        stamps : `Stamps`
            Those cutouts, with their metadata and pending unit conversion.
        """
        indices = np.asarray(indices, dtype=np.intp)
        # h5py reads increasing unique indices only: read those, then reorder.
        rows, order = np.unique(indices, return_inverse=True)

        def pick(values):
            if values is None:
                return None
            if np.ndim(values) == 0:
                return values
            return np.asarray(values[rows])[order] if len(rows) else np.asarray(values[:0])

        stamps = Stamps(stack=pick(self._stack), stack_mask=pick(self._stack_mask),
                        stack_std=pick(self._stack_std),
                        items=None if self._items is None else [self._items[i] for i in indices],
                        unit=self.unit, pixel_scale=pick(self.pixel_scale),
                        zeropoint=pick(self._zeropoint), flag=pick(self.flag),
                        zeropoint_default=self._zeropoint_default,
                        source_unit=pick(self._source_unit))
        stamps._scale = self._scale
        return stamps

    def convert_to(self, unit):
        """Rescale the pixels to ``unit`` (the unit seen at fit time).

        Zeropoints from meta or unit follow the pixels (the same galaxy in a
        smaller unit has more counts, so its zeropoint grows); from now on the
        ``zeropoint`` keyword refers to pixels in ``unit``.

        Parameters
        ----------
        unit : `~astropy.units.Unit` or None
            The pixel unit wanted; None for plain (unitless) pixels.

        Returns
        -------
        self : `Stamps`
            Converted in place.

        Raises
        ------
        astropy.units.UnitsError
            If the units cannot be converted, or only one side has a unit.
        """
        factor = check_unit(self.unit, unit)
        if factor != 1.0:
            self._scale *= factor
            self._zeropoint = self._zeropoint + 2.5 * np.log10(factor)
        self.unit = _pixel_unit(unit)
        self._source_unit = None
        return self

    def read(self, start, stop, shape):
        """Return cutouts ``start:stop`` centre-cropped/padded to ``shape``.

        Masked pixels (user mask, NaN/inf, infinite uncertainty, padding) are
        set to 0 in ``data`` so that they cannot leak into a prediction.
        Padded cutouts are flagged ``PADDED``, cropped ones ``CROPPED``.

        Parameters
        ----------
        start, stop : int
            The cutouts to read.
        shape : tuple of int
            ``(ny, nx)`` of the batch.

        Returns
        -------
        batch : `Batch`
            Float32 data, boolean mask, float32 standard deviations (or None
            when no cutout has an uncertainty) and per-cutout flags.
        """
        shape = tuple(shape)
        n = stop - start
        data = np.zeros((n,) + shape, np.float32)
        mask = np.ones((n,) + shape, bool)
        has_std = self._stack_std is not None or any(
            item[2] is not None for item in (self._items or ()))
        std = np.full((n,) + shape, np.nan, np.float32) if has_std else None
        padded = np.zeros(n, bool)
        cropped = np.zeros(n, bool)
        if self._stack is not None:
            big, small, pad, crop = _centre_slices(self._stack.shape[1:], shape)
            rows = slice(start, stop)
            _fill(data, mask, std, (slice(None),) + small,
                  self._stack[(rows,) + big],
                  None if self._stack_mask is None else self._stack_mask[(rows,) + big],
                  None if self._stack_std is None else self._stack_std[(rows,) + big])
            padded[:], cropped[:] = pad, crop
        else:
            for k, (img, msk, sd) in enumerate(self._items[start:stop]):
                big, small, padded[k], cropped[k] = _centre_slices(img.shape, shape)
                _fill(data, mask, std, (k,) + small, img[big],
                      None if msk is None else msk[big], None if sd is None else sd[big])
        if self._scale != 1.0:
            data *= self._scale
            if std is not None:
                std *= self._scale
        data[mask] = 0.0
        flag = self.flag[start:stop].copy()
        flag[padded] |= SersicFlag.PADDED
        flag[cropped] |= SersicFlag.CROPPED
        flag[mask.mean(axis=(1, 2)) > MASKED_FRACTION_LIMIT] |= SersicFlag.MASKED
        return Batch(data, mask, std, flag)

    def noise(self, start, stop, shape):
        """Robust per-cutout background noise (in the pixels' unit).

        The median of the uncertainty over unmasked pixels where one is
        given, else the MAD-based standard deviation of the unmasked pixels.

        Parameters
        ----------
        start, stop : int
            The cutouts to measure.
        shape : tuple of int
            ``(ny, nx)`` they are read at.

        Returns
        -------
        noise : `~numpy.ndarray`
            One value per cutout (NaN for a cutout without unmasked pixels).
        """
        batch = self.read(start, stop, shape)
        if batch.std is not None:
            std = np.where(batch.mask, np.nan, batch.std)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
                from_std = np.nanmedian(std, axis=(1, 2))
            if np.all(np.isfinite(from_std)):
                return from_std
        values = np.where(batch.mask, np.nan, batch.data)
        return mad_std(values.reshape(len(values), -1), axis=1, ignore_nan=True)


def _centre_slices(native, shape):
    """Slices cutting/padding ``native`` about its centre to ``shape``, and whether
    it was padded and cropped."""
    centre = tuple((s - 1) / 2 for s in native)
    big, small = overlap_slices(native, shape, centre, mode="partial")
    padded = any(sl.stop - sl.start < s for sl, s in zip(small, shape))
    cropped = any(sl.stop - sl.start < s for sl, s in zip(big, native))
    return big, small, padded, cropped


def _fill(data, mask, std, where, img, msk, sd):
    """Copy one cutout's pixels, mask and uncertainty into the batch arrays."""
    original = np.asarray(img)
    with np.errstate(over="ignore"):  # reported below unless masked
        img = original.astype(np.float32)
    bad = ~np.isfinite(img)
    if msk is not None:
        msk = np.asarray(msk, bool)
        # A finite unmasked pixel beyond float32's range would turn inf and be masked unseen.
        overflow = bad & ~msk
        bad |= msk
    else:
        overflow = bad.copy()
    if overflow.any() and np.isfinite(original[overflow]).any():
        raise ValueError(
            f"pixel values up to {np.abs(original[overflow]).max():.3g} exceed float32's "
            f"range ({np.finfo(np.float32).max:.3g}): rescale the cutouts (e.g. give them a "
            "unit in which the values are moderate)")
    if sd is not None:
        sd = np.asarray(sd, dtype=np.float32)
        bad |= ~np.isfinite(sd)
        std[where] = sd
    data[where] = img
    mask[where] = bad


def check_unit(unit, expected):
    """Return the factor converting pixels in ``unit`` to ``expected``.

    Parameters
    ----------
    unit, expected : `~astropy.units.Unit` or None
        The cutouts' pixel unit and the one wanted (None: no unit).

    Returns
    -------
    factor : float
        Multiply pixel values in ``unit`` by this to get them in ``expected``.

    Raises
    ------
    astropy.units.UnitsError
        If the two cannot be converted, or only one of them is set.
    """
    unit, expected = _pixel_unit(unit), _pixel_unit(expected)
    if unit is None and expected is None:
        return 1.0
    if unit is None or expected is None:
        have = "no unit" if unit is None else f"unit {unit!r}"
        want = "no unit" if expected is None else f"unit {expected!r}"
        raise u.UnitsError(
            f"the cutouts have {have} but the estimator was fitted on pixels with {want}; "
            "pass cutouts in the same unit as at fit time")
    try:
        return float(unit.to(expected, equivalencies=_EQUIVALENCIES))
    except u.UnitConversionError:
        raise u.UnitsError(
            f"the cutouts' unit {unit!r} cannot be converted to {expected!r}, the pixel "
            "unit seen at fit time; pass cutouts in a compatible unit") from None


def as_stamps(X, *, pixel_scale=None, zeropoint=None):
    """Validate cutouts in any supported form and return a `Stamps`.

    Parameters
    ----------
    X : list of NDData, NDData, array-like, or `Stamps`
        A list/tuple of 2-D `~astropy.nddata.NDData` (or `~astropy.nddata.CCDData`,
        2-D arrays or `~astropy.units.Quantity`), one 2-D NDData (a single
        cutout), one NDData holding a 3-D stack ``(n, ny, nx)``, or an array
        of shape ``(n, ny, nx)`` or ``(n, ny, nx, 1)``.  The mask (scalar or
        one value per pixel; True = bad) of an NDData or of a
        `numpy.ma.MaskedArray` marks bad pixels.  Uncertainties may be any of
        `~astropy.nddata.StdDevUncertainty`, `~astropy.nddata.VarianceUncertainty`
        or `~astropy.nddata.InverseVariance`, in any unit convertible to the
        data's.  A 2-D array ``(n, p)`` is read as ``n`` cutouts of shape
        ``(1, p)`` (scikit-learn's rows-are-samples convention); a single image
        array needs ``image[None]``.  A 3-D NDData's ``meta`` may hold a
        per-cutout (or one common) ``flag``, ``pixel_scale`` and zeropoint.
    pixel_scale : float or `~astropy.units.Quantity`, optional
        Pixel scale (arcsec/pixel, or an angle per pixel) for cutouts without
        a ``meta['pixel_scale']`` or a celestial WCS.
    zeropoint : float, optional
        AB zeropoint (AB magnitude of a source whose pixels sum to 1) for
        cutouts whose meta or unit give none.  It refers to pixels in the unit
        the cutouts are read in: after `Stamps.convert_to`, the unit converted
        to (for an estimator, the pixel unit seen at fit time).

    Returns
    -------
    stamps : `Stamps`
        The validated cutouts.

    Raises
    ------
    ValueError
        If ``X`` is empty, 1-D, of inconsistent dimensions, complex, or has a
        mask, uncertainty or per-cutout meta of the wrong shape or value; or
        ``pixel_scale`` is not positive, or ``zeropoint`` not finite.
    TypeError
        If ``X`` is sparse, boolean, a file name, or not numeric; if an
        uncertainty is of an unknown kind (e.g. a bare array); if
        ``pixel_scale`` or ``zeropoint`` is not a number.
    astropy.units.UnitsError
        If the cutouts carry units that cannot be converted into each other,
        or an uncertainty's unit cannot be converted to its data's.

    Examples
    --------
    >>> import numpy as np
    >>> import astropy.units as u
    >>> from astropy.nddata import NDData
    >>> from astromorphnet._input import as_stamps
    >>> stamps = as_stamps([NDData(np.ones((8, 8)), unit=u.electron / u.s)], zeropoint=25.0)
    >>> float(stamps.convert_to(u.electron / u.min).zeropoint[0])
    25.0
    """
    scale_default = _pixel_scale_value(pixel_scale)
    zp_default = _zeropoint_value(zeropoint, "zeropoint")
    if isinstance(X, Stamps):
        return X
    if hasattr(X, "as_stamps"):  # an on-disk set, e.g. simulation.SimulatedDataset
        return X.as_stamps()
    if X is None:
        raise TypeError("X is None: pass cutouts (arrays, NDData/CCDData or a list of them)")
    if isinstance(X, (str, bytes, os.PathLike)):
        raise TypeError(f"X is a file name ({X!r}): read the file first, e.g. with "
                        "astropy.nddata.CCDData.read or h5py")
    # NDData before the on-disk test: a CCDData has shape, dtype and slicing too.
    if isinstance(X, NDData):
        ndim = len(np.shape(X.data))
        if ndim == 3:
            return _from_stack_nddata(X, scale_default, zp_default)
        if ndim != 2:
            raise ValueError(f"an NDData must hold one 2-D cutout or a 3-D stack (n, ny, nx); "
                             f"got data of shape {np.shape(X.data)}")
        X = [X]  # one image: its unit, WCS and meta say so, unlike an (n, p) array
    if _is_lazy_stack(X):
        return _from_lazy(X, scale_default, zp_default)
    if isinstance(X, np.ndarray) and X.dtype == object and X.ndim == 1:
        X = list(X)  # a ragged set of cutouts
    if isinstance(X, (list, tuple)):
        if len(X) == 0:
            raise ValueError("X is empty: pass at least one cutout")
        if not any(isinstance(x, NDData) for x in X):
            X = [np.asanyarray(x) for x in X]
            units = {x.unit if isinstance(x, u.Quantity) else None for x in X}
            if len({x.shape for x in X}) == 1 and len(units) == 1:
                # np.stack drops the masks of masked arrays; np.ma.stack keeps them.
                stack = np.ma.stack if any(np.ma.isMaskedArray(x) for x in X) else np.stack
                return _from_array(stack(X), scale_default, zp_default)
        return _from_list(X, scale_default, zp_default)
    return _from_array(X, scale_default, zp_default)


def _is_lazy_stack(X):
    """An array-like read on indexing (h5py/zarr dataset), not an in-memory array."""
    return (not isinstance(X, (np.ndarray, NDData)) and not issparse(X)
            and all(hasattr(X, a) for a in ("shape", "dtype"))
            and hasattr(X, "__getitem__") and not isinstance(X, (list, tuple)))


def _check_lazy(X, what):
    if len(X.shape) != 3 or np.dtype(X.dtype).kind not in "iuf":
        raise ValueError(f"an on-disk cutout set must be numeric of shape (n, ny, nx); "
                         f"got shape {X.shape} and dtype {X.dtype} ({what})")
    if X.shape[0] == 0:
        raise ValueError("X is empty: pass at least one cutout")
    if 0 in X.shape[1:]:
        raise ValueError(f"{what} has cutouts of shape {X.shape[1:]}: a cutout needs at "
                         "least one pixel")


def _from_lazy(X, scale_default, zp_default):
    _check_lazy(X, "X")
    n = X.shape[0]
    return Stamps(stack=X, pixel_scale=np.full(n, scale_default), zeropoint=np.full(n, np.nan),
                  zeropoint_default=zp_default, flag=np.zeros(n, np.int64))


def _real_scalar(value):
    """Whether ``value`` is one real number (not a bool, string or array)."""
    return (not isinstance(value, (str, bytes, u.Quantity)) and np.ndim(value) == 0
            and np.asarray(value).dtype.kind in "iuf")


def _pixel_scale_value(pixel_scale):
    """The ``pixel_scale`` keyword in arcsec/pixel (NaN: not given)."""
    if pixel_scale is None:
        return np.nan
    value = pixel_scale
    if isinstance(pixel_scale, u.Quantity):
        value = _pixel_scale_values(pixel_scale, "pixel_scale")
    if not _real_scalar(value):
        raise TypeError(f"pixel_scale must be one number (arcsec/pixel) or a Quantity such as "
                        f"0.06 * u.arcsec / u.pix; got {pixel_scale!r}")
    value = float(value)
    if not value > 0:
        raise ValueError(f"pixel_scale must be positive, got {pixel_scale}")
    if not np.isfinite(value):
        raise ValueError(f"pixel_scale must be finite, got {pixel_scale}")
    return value


def _pixel_scale_values(values, what):
    """Pixel scale(s) in arcsec/pixel; an angle is read per pixel."""
    if not isinstance(values, u.Quantity):
        return values
    for unit in (u.arcsec / u.pix, u.arcsec):
        try:
            return values.to_value(unit)
        except u.UnitConversionError:
            pass
    raise u.UnitsError(f"{what} must be an angle per pixel (e.g. 0.06 * u.arcsec / u.pix); "
                       f"got unit {values.unit!r}")


def _zeropoint_value(value, what, text=False):
    """One AB zeropoint as a float (NaN: not given or NaN); ``text``: parse a string."""
    if value is None:
        return np.nan
    if isinstance(value, u.Quantity) and (value.unit == u.mag
                                          or isinstance(value.unit, u.MagUnit)):
        value = value.value
    if text and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if not _real_scalar(value):
        raise TypeError(f"{what} must be one AB zeropoint (a real number); got {value!r}")
    value = float(value)
    if np.isinf(value):
        raise ValueError(f"{what} must be finite; got {value}")
    return value


def _numeric(array, what):
    if issparse(array):
        raise TypeError(f"sparse input is not supported: pass {what} as a dense array "
                        "(e.g. X.toarray())")
    array = np.asanyarray(array)
    kind = array.dtype.kind
    if kind == "c":
        raise ValueError(f"Complex data not supported: {what} must hold real pixel values")
    if kind == "b":
        raise TypeError(f"{what} is boolean: pass pixel values; a bad-pixel mask goes in "
                        "NDData(data, mask=...) or a numpy.ma.MaskedArray")
    if kind not in "iufO":
        raise TypeError(f"{what} must hold numbers, not dtype {array.dtype}")
    if kind == "O":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{what} must hold numbers (dtype {array.dtype}): {err}") from None
    return array


def _from_array(X, scale_default, zp_default):
    unit = _pixel_unit(X.unit) if isinstance(X, u.Quantity) else None
    X = _numeric(X.value if isinstance(X, u.Quantity) else X, "X")
    shape = X.shape
    if X.ndim == 4 and X.shape[-1] == 1:
        X = X[..., 0]
    if X.ndim == 2:
        if X.shape[0] == X.shape[1] and X.shape[0] >= 16:
            warnings.warn(
                f"X of shape {X.shape} is read as {X.shape[0]} cutouts of shape "
                f"(1, {X.shape[1]}); for a single image pass image[np.newaxis]",
                UserWarning, stacklevel=4)
        X = X[:, np.newaxis, :]
    if X.ndim != 3:
        raise ValueError(
            f"X must be a set of 2-D cutouts: an array of shape (n, ny, nx) or "
            f"(n, ny, nx, 1), a list of 2-D NDData/CCDData or one 3-D NDData; got an "
            f"array of shape {X.shape}. Reshape your data: a single image with "
            "image[np.newaxis]")
    if len(X) == 0:
        raise ValueError("X is empty: pass at least one cutout")
    if 0 in X.shape[1:]:
        raise ValueError(f"X has 0 feature(s) (shape={shape}) while a minimum of 1 is "
                         "required: cutouts need at least one pixel")
    n = len(X)
    scale = np.full(n, scale_default)
    # A masked array's mask is read like an NDData's; the data under it is never used.
    mask = np.ma.getmask(X)
    return Stamps(stack=np.ma.getdata(X), stack_mask=None if mask is np.ma.nomask else mask,
                  unit=unit, pixel_scale=scale,
                  zeropoint=_unit_zeropoint(unit, scale, np.full(n, np.nan), "X"),
                  zeropoint_default=zp_default, flag=np.zeros(n, np.int64))


def _meta_lookup(meta, keys):
    """``(key, value)`` of the first of ``keys`` in ``meta`` (case-insensitive), or None."""
    lowered = {str(key).lower(): key for key in (meta or {})}
    for key in keys:
        if key.lower() in lowered:
            return lowered[key.lower()], meta[lowered[key.lower()]]
    return None


def _per_row(value, n, what):
    """A stack's meta value as one entry per cutout (a scalar applies to all)."""
    value = np.asarray(value)
    if value.ndim == 0:
        return np.full(n, value)
    if value.shape != (n,):
        raise ValueError(f"{what} of a 3-D NDData must have one value per cutout ({n}) or "
                         f"one for all; got shape {value.shape}")
    return value


def _flag_values(values, what):
    """Per-cutout flags as int64; they must be non-negative integers."""
    values = np.asarray(values)
    if values.dtype.kind == "b" or values.dtype.kind not in "iuf":
        raise TypeError(f"{what} must hold SersicFlag integers; got {values!r}")
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(values) & (values >= 0) & (values == np.round(values)))
    if bad.any():
        raise ValueError(f"{what} must hold non-negative integer SersicFlag bits; got "
                         f"{values[bad][:3].tolist()}")
    return values.astype(np.int64)


def _scales(values, default, what):
    """Per-cutout pixel scales (arcsec/pixel); NaN ones take ``default``."""
    values = np.asarray(values)
    if values.dtype.kind not in "iuf":
        raise TypeError(f"{what} must hold pixel scales (arcsec/pixel); got {values!r}")
    values = values.astype(float)
    bad = ~np.isnan(values) & ~((values > 0) & np.isfinite(values))
    if bad.any():
        raise ValueError(f"{what} must hold positive, finite pixel scales (arcsec/pixel; NaN: "
                         f"unknown); got {values[bad][:3].tolist()}")
    return np.where(np.isnan(values), default, values)


def _from_stack_nddata(nd, scale_default, zp_default):
    if _is_lazy_stack(nd.data):  # an h5py/zarr dataset wrapped in an NDData
        _check_lazy(nd.data, "X.data")
        data = nd.data
    else:
        data = _numeric(nd.data, "X.data")
    n = len(data)
    if n == 0:
        raise ValueError("X is empty: pass at least one cutout")
    if 0 in data.shape[1:]:
        raise ValueError(f"X has cutouts of shape {data.shape[1:]}: a cutout needs at least "
                         "one pixel")
    meta = nd.meta or {}
    unit = _pixel_unit(nd.unit)
    flag = _flag_values(_per_row(meta.get("flag", 0), n, "meta['flag']"), "X.meta['flag']")
    # As for a list of cutouts, meta overrides the WCS, which overrides the keyword.
    scale = _scales(_per_row(_pixel_scale_values(meta.get("pixel_scale", np.nan),
                                                 "meta['pixel_scale']"),
                             n, "meta['pixel_scale']"),
                    _wcs_pixel_scale(nd.wcs, scale_default), "X.meta['pixel_scale']")
    found = _meta_lookup(meta, ZEROPOINT_KEYS)
    zeropoint = np.full(n, np.nan)
    if found is not None:
        key, value = found
        zeropoint = np.array([_zeropoint_value(v, f"X.meta[{key!r}][{i}]", text=True)
                              for i, v in enumerate(_per_row(value, n, f"meta[{key!r}]"))])
    return Stamps(stack=data, stack_mask=_mask_array(nd.mask, data.shape, "X.mask"),
                  stack_std=_std_array(nd.uncertainty, data.shape, "X.uncertainty"),
                  unit=unit, pixel_scale=scale,
                  zeropoint=_unit_zeropoint(unit, scale, zeropoint, "X"),
                  zeropoint_default=zp_default, flag=flag)


def _from_list(X, scale_default, zp_default):
    # NDData reads a Quantity's unit and a masked array's mask.
    cutouts = [x if isinstance(x, NDData) else NDData(_numeric(x, f"X[{i}]"))
               for i, x in enumerate(X)]
    native = [_pixel_unit(nd.unit) for nd in cutouts]
    if len({unit is None for unit in native}) > 1:
        raise u.UnitsError(
            f"some cutouts have a unit and some do not (X[{native.index(None)}] has none, "
            f"X[{next(i for i, unit in enumerate(native) if unit is not None)}] has one); "
            "give all the same unit")
    unit = native[0]
    items, scales, zeropoints, flags = [], [], [], []
    for i, nd in enumerate(cutouts):
        data = _numeric(nd.data, f"X[{i}].data")
        if data.ndim != 2:
            raise ValueError(f"each cutout in a list must be 2-D; X[{i}] has shape {data.shape}")
        if 0 in data.shape:
            raise ValueError(f"X[{i}] has shape {data.shape}: a cutout needs at least one pixel")
        meta = nd.meta or {}
        # e.g. PADDED, set by cutouts.extract_cutouts for mosaic-edge sources
        flag = _flag_values(meta.get("flag", 0), f"X[{i}].meta['flag']")
        if flag.ndim:
            raise ValueError(f"X[{i}].meta['flag'] must be one SersicFlag integer; got shape "
                             f"{flag.shape}")
        flags.append(flag)
        factor = 1.0
        if unit is not None:
            try:
                factor = float(native[i].to(unit, equivalencies=_EQUIVALENCIES))
            except u.UnitConversionError:
                raise u.UnitsError(f"X[{i}]'s unit {native[i]!r} cannot be converted to "
                                   f"{unit!r}, the unit of X[0]; give all cutouts compatible "
                                   "units") from None
        std = _std_array(nd.uncertainty, data.shape, f"X[{i}].uncertainty")
        if factor != 1.0:
            data = data * factor
            std = None if std is None else std * factor
        items.append((data, _mask_array(nd.mask, data.shape, f"X[{i}].mask"), std))
        scale = _scales(_pixel_scale_values(meta.get("pixel_scale", np.nan),
                                            f"X[{i}].meta['pixel_scale']"),
                        _wcs_pixel_scale(nd.wcs, scale_default), f"X[{i}].meta['pixel_scale']")
        scales.append(float(scale))
        zp = _unit_zeropoint(native[i], scale, np.array([_meta_zeropoint(meta, f"X[{i}]")], float),
                             f"X[{i}]")[0]
        # A zeropoint refers to pixels in the cutout's own unit: follow the rescaling.
        zeropoints.append(zp + 2.5 * np.log10(factor))
    source_unit = None if len(set(native)) == 1 else np.array(native, dtype=object)
    return Stamps(items=items, unit=unit, pixel_scale=np.array(scales),
                  zeropoint=np.array(zeropoints), zeropoint_default=zp_default,
                  source_unit=source_unit, flag=np.array(flags, np.int64))


def _mask_array(mask, shape, what):
    """An NDData's mask as a boolean array of the data's shape (None: no mask).

    NDData accepts any mask, e.g. a scalar ``False``; broadcasting gives it
    the data's shape without copying.  Any other shape is refused: a row
    mask silently repeated over a cutout would hide a mistake.
    """
    if mask is None:
        return None
    mask = np.asanyarray(mask)
    if mask.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be boolean (True = bad pixel); got dtype {mask.dtype}")
    if mask.ndim != 0 and mask.shape != tuple(shape):
        raise ValueError(f"{what} of shape {mask.shape} does not match the data's shape "
                         f"{tuple(shape)}: give one mask value per pixel (True = bad)")
    return np.broadcast_to(np.asarray(mask, bool), shape)


def _pixel_unit(unit):
    """The pixel unit, with dimensionless read as no unit (a plain array)."""
    if unit is None:
        return None
    if isinstance(unit, u.FunctionUnitBase) or u.dex in u.Unit(unit).decompose().bases:
        raise u.UnitsError(f"pixel values in the logarithmic unit {unit} cannot be summed "
                           "into a flux: give cutouts in a linear unit (e.g. u.nJy)")
    unit = u.Unit(unit)
    return None if unit == u.dimensionless_unscaled else unit


def _std_array(uncertainty, shape=None, what="the uncertainty"):
    """Standard deviations, in the data's unit, from any astropy uncertainty class.

    Parameters
    ----------
    uncertainty : `~astropy.nddata.NDUncertainty` or None
        An NDData's uncertainty.
    shape : tuple of int, optional
        The data's shape, which the uncertainty must have (or be a scalar).
    what : str, optional
        How to name it in error messages.

    Returns
    -------
    std : `~numpy.ndarray` or None
        None when there is no uncertainty.
    """
    if uncertainty is None:
        return None
    kind = getattr(uncertainty, "uncertainty_type", "unknown")
    if kind not in ("std", "var", "ivar"):
        raise TypeError(f"{what} is of unknown kind ({type(uncertainty).__name__}, as "
                        "NDData(uncertainty=array) makes): say what the array holds, "
                        f"{_UNCERTAINTY_HINT}")
    values = np.asarray(uncertainty.array)
    if values.dtype.kind not in "iuf":
        raise TypeError(f"{what} must hold real numbers; got dtype {values.dtype}")
    if shape is not None and values.ndim != 0 and values.shape != tuple(shape):
        raise ValueError(f"{what} of shape {values.shape} does not match the data's shape "
                         f"{tuple(shape)}: give one value per pixel (or one for all)")
    with np.errstate(invalid="ignore"):
        negative = values < 0
    if negative.any():
        raise ValueError(f"{what} has {int(negative.sum())} negative value(s) (e.g. "
                         f"{values[negative].flat[0]}): a {_UNCERTAINTY_NAMES[kind]} cannot "
                         "be negative")
    with np.errstate(divide="ignore"):
        std = (uncertainty if kind == "std"
               else uncertainty.represent_as(StdDevUncertainty))
    array = np.asarray(std.array, float)
    if shape is not None:
        array = np.broadcast_to(array, shape)
    return array * _uncertainty_factor(uncertainty, std.unit, what)


def _uncertainty_factor(uncertainty, std_unit, what):
    """The factor converting standard deviations in ``std_unit`` to the data's unit."""
    if std_unit is None:
        return 1.0  # no unit of its own: the data's
    try:
        data_unit = uncertainty.parent_nddata.unit
    except MissingDataAssociationException:  # not attached to data: nothing to convert to
        return 1.0
    data_unit = u.dimensionless_unscaled if data_unit is None else u.Unit(data_unit)
    try:
        return float(u.Unit(std_unit).to(data_unit, equivalencies=_EQUIVALENCIES))
    except u.UnitConversionError:
        raise u.UnitsError(f"{what}'s unit {std_unit!r} cannot be converted to the data's "
                           f"unit {data_unit!r}") from None


def _wcs_pixel_scale(wcs, default):
    if wcs is None or not getattr(wcs, "has_celestial", False):
        return default
    scales = proj_plane_pixel_scales(wcs.celestial) * u.Unit(wcs.celestial.wcs.cunit[0])
    return float(np.mean(scales.to_value(u.arcsec)))


def _meta_zeropoint(meta, what="the cutout"):
    """The AB zeropoint in ``meta`` (any of `ZEROPOINT_KEYS`); None if absent or NaN."""
    found = _meta_lookup(meta, ZEROPOINT_KEYS)
    if found is None:
        return None
    key, value = found
    value = _zeropoint_value(value, f"{what}'s meta[{key!r}]", text=True)
    return None if np.isnan(value) else value


def _unit_zeropoint(unit, pixel_scale, zeropoint, what):
    """Zeropoints ``zeropoint`` overridden by those a physical pixel unit fixes.

    A flux density gives the AB zeropoint exactly; a surface brightness does
    given the (square) pixel's size.  A differing meta zeropoint is reported.
    """
    if unit is None:
        return zeropoint
    exact = np.full(len(zeropoint), np.nan)
    for area in (1.0, (np.asarray(pixel_scale) * u.arcsec) ** 2):
        try:
            exact = np.broadcast_to((unit * area).to_value(u.ABmag, _EQUIVALENCIES),
                                    exact.shape)
            break
        except u.UnitConversionError:
            pass
    exact = np.where(np.isfinite(exact), exact, np.nan)  # a NaN pixel scale: unknown
    conflict = np.abs(zeropoint - exact) > ZEROPOINT_TOLERANCE
    if conflict.any():
        warnings.warn(f"{what}: the meta zeropoint {zeropoint[conflict][0]} differs from "
                      f"{exact[conflict][0]:.4f}, the AB zeropoint of its pixel unit {unit}; "
                      "using the unit's", AstropyUserWarning, stacklevel=5)
    return np.where(np.isnan(exact), zeropoint, exact)

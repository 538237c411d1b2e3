"""The input layer: every estimator and transformer reads its cutouts here.

Users hand over cutouts in many forms (a list of `~astropy.nddata.NDData` or
`~astropy.nddata.CCDData`, one `~astropy.nddata.NDData` holding a 3-D stack, a
NumPy array or `~astropy.units.Quantity`).  `as_stamps` validates them once and
returns a `Stamps` object that materialises model-ready batches lazily, so a
large memory-mapped array is never copied whole.
"""

import warnings
from collections import namedtuple

import astropy.units as u
import numpy as np
from astropy.nddata import NDData, StdDevUncertainty
from astropy.nddata.utils import overlap_slices
from astropy.stats import mad_std
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy.sparse import issparse

from .catalog._flags import MASKED_FRACTION_LIMIT, SersicFlag

__all__ = ["Batch", "Stamps", "as_stamps", "check_unit"]

#: FITS header / meta keywords read as a cutout's AB zeropoint, in this order.
ZEROPOINT_KEYS = ("zeropoint", "MAGZERO", "PHOTZP", "MAGZPT")

#: Keys of a 3-D NDData's ``meta`` holding one value per cutout.
STACK_META_KEYS = ("flag", "pixel_scale", "zeropoint")

Batch = namedtuple("Batch", ["data", "mask", "std", "flag"])
Batch.__doc__ = """Cutouts cropped/padded to one shape; masked pixels of ``data`` are 0."""


class Stamps:
    """A validated set of cutouts read in batches of a common shape.

    Do not build one directly: use `as_stamps`.  Either ``stack`` (an array
    ``(n, ny, nx)``, possibly memory-mapped) or ``items`` (a list of 2-D
    ``(data, mask, std)`` triples, for cutouts of different shapes) holds the
    pixels; the per-cutout arrays have length ``n``.
    """

    def __init__(self, *, stack=None, stack_mask=None, stack_std=None, items=None,
                 unit=None, pixel_scale, zeropoint, flag):
        self._stack = stack
        self._stack_mask = stack_mask
        self._stack_std = stack_std
        self._items = items
        self.unit = _pixel_unit(unit)
        self.pixel_scale = pixel_scale
        self.zeropoint = zeropoint
        self.flag = flag
        self._scale = 1.0

    def __len__(self):
        return len(self.flag)

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
        """The cutouts at ``indices``, as a new in-memory `Stamps`."""
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
                        zeropoint=pick(self.zeropoint), flag=pick(self.flag))
        stamps._scale = self._scale
        return stamps

    def convert_to(self, unit):
        """Rescale the pixels to ``unit`` (the unit seen at fit time).

        Raises
        ------
        astropy.units.UnitsError
            If the units cannot be converted, or only one side has a unit.
        """
        factor = check_unit(self.unit, unit)
        if factor != 1.0:
            self._scale *= factor
            # The same galaxy in smaller units has more counts: its zeropoint grows.
            self.zeropoint = self.zeropoint + 2.5 * np.log10(factor)
            self.unit = unit
        return self

    def read(self, start, stop, shape):
        """Return cutouts ``start:stop`` centre-cropped/padded to ``shape``.

        Masked pixels (user mask, NaN/inf, infinite uncertainty, padding) are
        set to 0 in ``data`` so that they cannot leak into a prediction.
        """
        shape = tuple(shape)
        n = stop - start
        data = np.zeros((n,) + shape, np.float32)
        mask = np.ones((n,) + shape, bool)
        has_std = self._stack_std is not None or any(
            item[2] is not None for item in (self._items or ()))
        std = np.full((n,) + shape, np.nan, np.float32) if has_std else None
        padded = np.zeros(n, bool)
        if self._stack is not None:
            big, small, pad = _centre_slices(self._stack.shape[1:], shape)
            rows = slice(start, stop)
            _fill(data, mask, std, (slice(None),) + small,
                  self._stack[(rows,) + big],
                  None if self._stack_mask is None else self._stack_mask[(rows,) + big],
                  None if self._stack_std is None else self._stack_std[(rows,) + big])
            padded[:] = pad
        else:
            for k, (img, msk, sd) in enumerate(self._items[start:stop]):
                big, small, padded[k] = _centre_slices(img.shape, shape)
                _fill(data, mask, std, (k,) + small, img[big],
                      None if msk is None else msk[big], None if sd is None else sd[big])
        if self._scale != 1.0:
            data *= self._scale
            if std is not None:
                std *= self._scale
        data[mask] = 0.0
        flag = self.flag[start:stop].copy()
        flag[padded] |= SersicFlag.PADDED
        flag[mask.mean(axis=(1, 2)) > MASKED_FRACTION_LIMIT] |= SersicFlag.MASKED
        return Batch(data, mask, std, flag)

    def noise(self, start, stop, shape):
        """Robust per-cutout background noise (in the pixels' unit).

        The median of the uncertainty over unmasked pixels where one is
        given, else the MAD-based standard deviation of the unmasked pixels.
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
    """Slices cutting/padding ``native`` about its centre to ``shape``."""
    centre = tuple((s - 1) / 2 for s in native)
    big, small = overlap_slices(native, shape, centre, mode="partial")
    padded = any(sl.stop - sl.start < s for sl, s in zip(small, shape))
    return big, small, padded


def _fill(data, mask, std, where, img, msk, sd):
    """Copy one cutout's pixels, mask and uncertainty into the batch arrays."""
    img = np.asarray(img, dtype=np.float32)
    bad = ~np.isfinite(img)
    if msk is not None:
        bad |= np.asarray(msk, bool)
    if sd is not None:
        sd = np.asarray(sd, dtype=np.float32)
        bad |= ~np.isfinite(sd)
        std[where] = sd
    data[where] = img
    mask[where] = bad


def check_unit(unit, expected):
    """Return the factor converting pixels in ``unit`` to ``expected``.

    Raises
    ------
    astropy.units.UnitsError
        If the two cannot be converted, or only one of them is set.
    """
    if unit is None and expected is None:
        return 1.0
    if unit is None or expected is None:
        have = "no unit" if unit is None else f"unit {unit!r}"
        want = "no unit" if expected is None else f"unit {expected!r}"
        raise u.UnitsError(
            f"the cutouts have {have} but the estimator was fitted on pixels with {want}; "
            "pass cutouts in the same unit as at fit time")
    try:
        return float(u.Unit(unit).to(expected))
    except u.UnitConversionError:
        raise u.UnitsError(
            f"the cutouts' unit {unit!r} cannot be converted to {expected!r}, the pixel "
            "unit seen at fit time; pass cutouts in a compatible unit") from None


def as_stamps(X, *, pixel_scale=None, zeropoint=None):
    """Validate cutouts in any supported form and return a `Stamps`.

    Parameters
    ----------
    X : list of NDData, NDData, array-like, or `Stamps`
        A list/tuple of 2-D `~astropy.nddata.NDData` (or `~astropy.nddata.CCDData`
        or 2-D arrays), one `~astropy.nddata.NDData` holding a 3-D stack, or an
        array of shape ``(n, ny, nx)`` or ``(n, ny, nx, 1)``.  The mask of an
        NDData or of a `numpy.ma.MaskedArray` marks bad pixels.  A 2-D array
        ``(n, p)`` is read as ``n`` cutouts of shape ``(1, p)`` (scikit-learn's
        rows-are-samples convention); a single image needs ``image[None]``.
    pixel_scale : float or `~astropy.units.Quantity`, optional
        Pixel scale (arcsec/pixel) for cutouts without a celestial WCS (or,
        for a 3-D NDData, a per-cutout ``meta['pixel_scale']``).
    zeropoint : float, optional
        AB zeropoint for cutouts whose meta/unit give none.

    Returns
    -------
    stamps : `Stamps`
        The validated cutouts.

    Raises
    ------
    ValueError
        If ``X`` is empty, 1-D, of inconsistent dimensions, complex, or has
        a mask or per-cutout meta of the wrong shape; or ``pixel_scale`` is
        not positive.
    TypeError
        If ``X`` is sparse or not numeric.
    astropy.units.UnitsError
        If the cutouts carry units that cannot be converted into each other.
    """
    if isinstance(X, Stamps):
        return X
    if hasattr(X, "as_stamps"):  # an on-disk set, e.g. simulation.SimulatedDataset
        return X.as_stamps()
    if _is_lazy_stack(X):
        return _from_lazy(X, pixel_scale, zeropoint)
    scale_default = _pixel_scale_value(pixel_scale)
    zp_default = np.nan if zeropoint is None else float(zeropoint)
    if isinstance(X, NDData):
        if np.ndim(X.data) == 3:
            return _from_stack_nddata(X, scale_default, zp_default)
        X = [X]
    if isinstance(X, (list, tuple)):
        if len(X) == 0:
            raise ValueError("X is empty: pass at least one cutout")
        if not any(isinstance(x, NDData) for x in X):
            X = [np.asanyarray(x) for x in X]
            if len({x.shape for x in X}) == 1:
                # np.stack drops the masks of masked arrays; np.ma.stack keeps them.
                stack = np.ma.stack if any(np.ma.isMaskedArray(x) for x in X) else np.stack
                return _from_array(stack(X), scale_default, zp_default)
        return _from_list(X, scale_default, zp_default)
    return _from_array(X, scale_default, zp_default)


def _is_lazy_stack(X):
    """An array-like read on indexing (h5py/zarr dataset), not an in-memory array."""
    return (not isinstance(X, np.ndarray) and not issparse(X)
            and all(hasattr(X, a) for a in ("shape", "dtype"))
            and hasattr(X, "__getitem__") and not isinstance(X, (list, tuple)))


def _from_lazy(X, pixel_scale, zeropoint):
    if len(X.shape) != 3 or np.dtype(X.dtype).kind not in "biuf":
        raise ValueError(f"an on-disk cutout set must be numeric of shape (n, ny, nx); "
                         f"got shape {X.shape} and dtype {X.dtype}")
    if X.shape[0] == 0:
        raise ValueError("X is empty: pass at least one cutout")
    n = X.shape[0]
    zp = np.full(n, np.nan if zeropoint is None else float(zeropoint))
    return Stamps(stack=X, pixel_scale=np.full(n, _pixel_scale_value(pixel_scale)),
                  zeropoint=zp, flag=np.zeros(n, np.int64))


def _pixel_scale_value(pixel_scale):
    if pixel_scale is None:
        return np.nan
    value = u.Quantity(pixel_scale, u.arcsec / u.pix).to_value(u.arcsec / u.pix)
    if not value > 0:
        raise ValueError(f"pixel_scale must be positive, got {pixel_scale}")
    return value


def _numeric(array, what):
    if issparse(array):
        raise TypeError(f"sparse input is not supported: pass {what} as a dense array "
                        "(e.g. X.toarray())")
    array = np.asanyarray(array)
    if array.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {what} must hold real pixel values")
    if array.dtype.kind not in "biuf":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{what} must hold numbers (dtype {array.dtype}): {err}") from None
    return array


def _from_array(X, scale_default, zp_default):
    unit = X.unit if isinstance(X, u.Quantity) else None
    X = _numeric(X.value if unit is not None else X, "X")
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
    # A masked array's mask is read like an NDData's; the data under it is never used.
    mask = np.ma.getmask(X)
    return Stamps(stack=np.ma.getdata(X), stack_mask=None if mask is np.ma.nomask else mask,
                  unit=unit, pixel_scale=np.full(n, scale_default),
                  zeropoint=_unit_zeropoint(unit, np.full(n, zp_default)),
                  flag=np.zeros(n, np.int64))


def _from_stack_nddata(nd, scale_default, zp_default):
    n = len(nd.data)
    if n == 0:
        raise ValueError("X is empty: pass at least one cutout")
    meta = nd.meta or {}
    per_row = {}
    # As for a list of cutouts, a celestial WCS overrides the pixel_scale keyword.
    scale_default = _wcs_pixel_scale(nd.wcs, scale_default)
    for key, default in zip(STACK_META_KEYS, (0, scale_default, zp_default)):
        value = np.asarray(meta.get(key, np.full(n, default)))
        if value.shape != (n,):
            raise ValueError(f"meta[{key!r}] of a 3-D NDData must have one value per "
                             f"cutout ({n}); got shape {value.shape}")
        per_row[key] = np.where(np.isnan(value), default, value) if key != "flag" else value
    std = None if nd.uncertainty is None else _std_array(nd.uncertainty)
    data = _numeric(nd.data, "NDData.data")
    return Stamps(stack=data, stack_mask=_mask_array(nd.mask, data.shape, "X.mask"),
                  stack_std=std, unit=nd.unit,
                  pixel_scale=per_row["pixel_scale"].astype(float),
                  zeropoint=_unit_zeropoint(nd.unit, per_row["zeropoint"].astype(float)),
                  flag=per_row["flag"].astype(np.int64))


def _from_list(X, scale_default, zp_default):
    units = {_pixel_unit(x.unit) for x in X if isinstance(x, NDData)}
    if len(units) > 1 and None in units:
        raise u.UnitsError("some cutouts have a unit and some do not; give all the same unit")
    unit = next((_pixel_unit(x.unit) for x in X
                 if isinstance(x, NDData) and _pixel_unit(x.unit) is not None), None)
    items, scales, zeropoints, flags = [], [], [], []
    for i, x in enumerate(X):
        nd = x if isinstance(x, NDData) else NDData(_numeric(x, f"X[{i}]"))
        data = _numeric(nd.data, f"X[{i}].data")
        if data.ndim != 2:
            raise ValueError(f"each cutout in a list must be 2-D; X[{i}] has shape {data.shape}")
        # e.g. PADDED, set by cutouts.extract_cutouts for mosaic-edge sources
        flags.append(int((nd.meta or {}).get("flag", 0)))
        factor = check_unit(_pixel_unit(nd.unit), unit)
        std = None if nd.uncertainty is None else _std_array(nd.uncertainty)
        if factor != 1.0:
            data = data * factor
            std = None if std is None else std * factor
        items.append((data, _mask_array(nd.mask, data.shape, f"X[{i}].mask"), std))
        scales.append(_wcs_pixel_scale(nd.wcs, scale_default))
        zp = _meta_zeropoint(nd.meta)
        zeropoints.append(zp_default if zp is None else zp + 2.5 * np.log10(factor))
    return Stamps(items=items, unit=unit, pixel_scale=np.array(scales),
                  zeropoint=_unit_zeropoint(unit, np.array(zeropoints)),
                  flag=np.array(flags, np.int64))


def _mask_array(mask, shape, what):
    """An NDData's mask as a boolean array of the data's shape (None: no mask).

    NDData accepts any mask, e.g. a scalar ``False``; broadcasting gives it
    the data's shape without copying.
    """
    if mask is None:
        return None
    try:
        return np.broadcast_to(np.asarray(mask, bool), shape)
    except ValueError:
        raise ValueError(f"{what} of shape {np.shape(mask)} does not match the data's shape "
                         f"{shape}: give one mask value per pixel (True = bad)") from None


def _pixel_unit(unit):
    """The pixel unit, with dimensionless read as no unit (a plain array)."""
    if unit is None or u.Unit(unit) == u.dimensionless_unscaled:
        return None
    return u.Unit(unit)


def _std_array(uncertainty):
    """Standard deviations from any astropy uncertainty class."""
    if isinstance(uncertainty, StdDevUncertainty):
        return np.asarray(uncertainty.array)
    with np.errstate(divide="ignore"):
        return np.asarray(uncertainty.represent_as(StdDevUncertainty).array)


def _wcs_pixel_scale(wcs, default):
    if wcs is None or not getattr(wcs, "has_celestial", False):
        return default
    scales = proj_plane_pixel_scales(wcs.celestial) * u.Unit(wcs.celestial.wcs.cunit[0])
    return float(np.mean(scales.to_value(u.arcsec)))


def _meta_zeropoint(meta):
    meta = meta or {}
    lowered = {str(key).lower(): key for key in meta}
    for key in ZEROPOINT_KEYS:
        if key.lower() in lowered:
            return float(meta[lowered[key.lower()]])
    return None


def _unit_zeropoint(unit, zeropoint):
    """Fill unknown zeropoints from a spectral flux density pixel unit."""
    if unit is None:
        return zeropoint
    try:
        zp_unit = (1 * u.Unit(unit)).to_value(u.ABmag)
    except u.UnitConversionError:
        return zeropoint
    return np.where(np.isnan(zeropoint), zp_unit, zeropoint)

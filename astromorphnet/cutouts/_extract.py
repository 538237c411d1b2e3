"""Cutouts of the galaxies in a mosaic, their neighbours masked.

Sources are found (or given) on a background-subtracted mosaic; photutils'
segmentation (`~photutils.segmentation.detect_sources` then
`~photutils.segmentation.deblend_sources`) tells which pixels belong to
which source, so every cutout can mask the pixels of its neighbours.  The
cutouts are `~astropy.nddata.CCDData` that every astromorphnet estimator
reads directly.
"""

import datetime
import importlib.util
import inspect
import numbers
import os
import warnings
from collections import namedtuple

import astropy
import astropy.units as u
import numpy as np
import photutils
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import CCDData, Cutout2D, NDData, StdDevUncertainty
from astropy.nddata.utils import overlap_slices
from astropy.table import QTable, Table
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS
from numpy.lib.stride_tricks import sliding_window_view
from photutils.background import Background2D
from photutils.segmentation import (SourceCatalog, deblend_sources, detect_sources,
                                    make_2dgaussian_kernel)
from photutils.utils import NoDetectionsWarning
from scipy.ndimage import binary_dilation, correlate1d, maximum_filter, zoom

from .._input import _meta_zeropoint, _std_array
from ..catalog._flags import MASKED_FRACTION_LIMIT, SersicFlag

__all__ = ["CutoutExtraction", "extract_cutouts"]

#: Unit given to cutouts of a mosaic that has none (`~astropy.nddata.CCDData` needs
#: one); the estimators read it as "no unit", like a plain array.
DEFAULT_UNIT = u.dimensionless_unscaled

#: Table columns read as pixel positions, then as sky positions, in this order.
_PIXEL_COLUMNS = (("x", "y"), ("x_centroid", "y_centroid"), ("xcentroid", "ycentroid"))
_SKY_COLUMNS = ("skycoord", "sky_centroid")

CutoutExtraction = namedtuple("CutoutExtraction",
                              ["cutouts", "table", "segmentation", "background"])
CutoutExtraction.__doc__ = """What `extract_cutouts` returns.

Attributes
----------
cutouts : list of `~astropy.nddata.CCDData`
    One cutout per source, in the order of ``table``.
table : `~astropy.table.QTable`
    One row per cutout.
segmentation : `~photutils.segmentation.SegmentationImage` or None
    The (deblended) segmentation image of the mosaic; None when no source
    was detected.
background : `~photutils.background.Background2D`
    The background (and background RMS) model of the mosaic; its
    ``background`` and ``background_rms`` maps are interpolated anew at each
    access.

Examples
--------
>>> import numpy as np
>>> from astromorphnet.cutouts import extract_cutouts
>>> image = np.random.default_rng(0).normal(0.0, 1.0, (64, 64))
>>> image[30:34, 40:44] += 50.0
>>> result = extract_cutouts(image, size=16, deblend=False)
>>> result.cutouts[0].shape, result.table["label"].tolist()
((16, 16), [1])
>>> cutouts, table, segmentation, background = result  # a named tuple
"""

_Mosaic = namedtuple("_Mosaic", ["data", "std", "bad", "wcs", "unit", "meta"])


def extract_cutouts(mosaic, positions=None, *, size=64, error=None, weight=None, mask=None,
                    wcs=None, subtract_background=True, box_size=64, filter_size=3,
                    threshold=1.5, n_pixels=10, kernel_fwhm=3.0, deblend=True, n_levels=32,
                    contrast=0.001, dilate=2):
    """Cut out the galaxies of a mosaic, masking their neighbours.

    The background is estimated with `~photutils.background.Background2D`
    and subtracted.  Sources are detected on the background-subtracted
    mosaic, smoothed with a Gaussian kernel, above ``threshold`` times the
    background RMS (`~photutils.segmentation.detect_sources`) and deblended
    (`~photutils.segmentation.deblend_sources`).  Without ``positions`` the
    cutouts are centred on the sources' centroids
    (`~photutils.segmentation.SourceCatalog`); with ``positions`` they are
    centred there and the segmentation only serves to mask neighbours.

    Parameters
    ----------
    mosaic : `~astropy.nddata.NDData`, array-like, `~astropy.units.Quantity` or path
        The image: an `~astropy.nddata.NDData` / `~astropy.nddata.CCDData`
        (its ``wcs``, ``mask``, ``uncertainty`` and ``unit`` are used), a
        2-D array, or the path of a FITS file (read with
        `~astropy.nddata.CCDData.read`, from the first HDU holding data).
    positions : `~astropy.coordinates.SkyCoord`, array-like or `~astropy.table.Table`, optional
        Where to cut: sky positions (need a WCS), an ``(N, 2)`` array of
        0-based pixel ``(x, y)``, or a table with pixel columns
        ``x``/``y`` (or ``x_centroid``/``y_centroid``, ``xcentroid``/``ycentroid``)
        or sky columns ``skycoord`` / ``sky_centroid`` (a
        `~astropy.coordinates.SkyCoord`) or ``ra``/``dec`` (degrees when
        unitless); pixel columns are preferred.  The ``table`` returned by
        this function is accepted.  Default: detect the sources.
    size : int or tuple of int, optional
        Cutout shape ``(ny, nx)``; an int gives a square.
    error : array-like, `~astropy.units.Quantity` or path, optional
        Per-pixel standard deviation, in the mosaic's unit.  Zero (no
        data, like a zero weight) and non-finite values are masked;
        negative values raise.
    weight : array-like or path, optional
        Per-pixel inverse variance; the uncertainty is ``1 / sqrt(weight)``
        and pixels of zero (or negative, or non-finite) weight are masked.
        Give ``error`` or ``weight``, not both.
    mask : array-like or path, optional
        Bad pixels (True = bad).
    wcs : `~astropy.wcs.WCS`, optional
        The mosaic's WCS, needed for sky positions and sky coordinates.
    subtract_background : bool, optional
        Whether to subtract the background model from the cutouts (the RMS
        model sets the detection threshold either way).  Give False for
        mosaics that are already background-subtracted.
    box_size : int or tuple of int, optional
        `~photutils.background.Background2D` box size in pixels.
    filter_size : int or tuple of int, optional
        `~photutils.background.Background2D` median filter size in boxes.
    threshold : float, optional
        Detection threshold in units of the background RMS, applied to the
        smoothed image.
    n_pixels : int, optional
        Minimum number of connected pixels of a source (and of a deblended
        source).
    kernel_fwhm : float or None, optional
        FWHM (pixels) of the Gaussian smoothing kernel of the detection
        image (about the PSF's); None detects on the unsmoothed image.
    deblend : bool, optional
        Whether to deblend overlapping sources.
    n_levels : int, optional
        Number of deblending thresholds.
    contrast : float, optional
        Minimum flux fraction of a deblended component.
    dilate : int, optional
        Radius in pixels by which the neighbours' segments are grown before
        masking them (their faint wings lie outside the segment).  The
        source's own segment is never masked.

    Returns
    -------
    result : `CutoutExtraction`
        A named tuple ``(cutouts, table, segmentation, background)``:

        - ``cutouts``: list of `~astropy.nddata.CCDData` of shape ``size``,
          background-subtracted (unless ``subtract_background=False``),
          with the cutout's WCS, a `~astropy.nddata.StdDevUncertainty`
          when ``error``/``weight`` (or the NDData's uncertainty) is given,
          the mosaic's unit (dimensionless when it has none) and a boolean
          ``mask``: True on neighbours' (dilated) segments, on pixels
          beyond the mosaic's edge (whose data are NaN), and on bad pixels
          (``mask``, NaN, zero weight).  ``meta`` holds ``id``, ``x``,
          ``y`` (0-based position in the mosaic), ``label`` (the source's
          segment, 0 when it has none), ``flag`` (an int of
          `~astromorphnet.catalog.SersicFlag` bits: ``PADDED`` when the
          cutout crosses the mosaic's edge, ``MASKED`` when more than
          `~astromorphnet.catalog.MASKED_FRACTION_LIMIT` of it is masked)
          and ``zeropoint`` when the mosaic's meta/header gives one.
        - ``table``: `~astropy.table.QTable` with one row per cutout:
          ``id``, ``x``, ``y`` [pix], ``skycoord`` (with a celestial WCS),
          ``label``, ``area`` [pix²] and ``segment_flux`` (sum of the
          background-subtracted segment pixels) of the source's segment
          (0 and NaN without one), and ``flag``.
        - ``segmentation``: the `~photutils.segmentation.SegmentationImage`.
        - ``background``: the `~photutils.background.Background2D`.

    Raises
    ------
    ValueError
        If the mosaic is not 2-D, empty or has no valid pixel; ``size`` is
        not positive; ``error``/``weight``/``mask`` do not match the
        mosaic's shape, ``error`` is negative, or both ``error`` and
        ``weight`` are given; the background cannot be estimated (no
        ``box_size`` box is 90 % valid: a mostly masked mosaic);
        ``positions`` are not ``(N, 2)``, not finite, lack the columns
        needed, or (a centre) lie outside the mosaic; sky positions are
        given without a celestial WCS; or a detection option is invalid.
    TypeError
        If ``wcs`` is not an `~astropy.wcs.WCS`, or ``subtract_background``
        or ``deblend`` is not a bool.
    ImportError
        If ``deblend`` is True and scikit-image (which photutils' deblending
        needs) is not installed.

    Warns
    -----
    photutils.utils.NoDetectionsWarning
        When no ``positions`` are given and no source is detected: the
        result then holds no cutout and an empty table.
    astropy.utils.exceptions.AstropyUserWarning
        When a keyword duplicates an attribute of an NDData mosaic (the
        NDData's is used).

    Notes
    -----
    Edge sources are kept: their cutouts are padded with masked NaN pixels
    and flagged ``PADDED``.  A position whose centre lies outside the mosaic
    raises instead, so the cutouts always match the positions one to one.

    A cutout always carries a unit (dimensionless for a unitless mosaic,
    which estimators treat like a plain array).  Estimators check that the
    cutouts' unit is the one they were fitted with.

    Examples
    --------
    >>> import numpy as np
    >>> from astromorphnet.cutouts import extract_cutouts
    >>> rng = np.random.default_rng(0)
    >>> yy, xx = np.mgrid[:128, :128]
    >>> image = rng.normal(0.0, 1.0, (128, 128))
    >>> for x0, y0 in [(40.2, 50.7), (90.6, 80.1)]:
    ...     image += 50 * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / 8)
    >>> result = extract_cutouts(image, size=32)
    >>> len(result.cutouts), result.cutouts[0].shape
    (2, (32, 32))
    >>> result.table["x"].value.round(1).tolist(), result.table["y"].value.round(1).tolist()
    ([40.2, 90.6], [50.7, 80.1])
    >>> result.cutouts[0].meta["flag"]  # not padded, little masked
    0
    """
    found = _extract_stack(mosaic, positions, size=size, error=error, weight=weight, mask=mask,
                           wcs=wcs, subtract_background=subtract_background,
                           box_size=box_size, filter_size=filter_size, threshold=threshold,
                           n_pixels=n_pixels, kernel_fwhm=kernel_fwhm, deblend=deblend,
                           n_levels=n_levels, contrast=contrast, dilate=dilate)
    return CutoutExtraction(_as_ccddata(found), found.table, found.segmentation,
                            found.background)


#: The detection options of `extract_cutouts` and their defaults (what
#: `~astromorphnet.measure` forwards to `_extract_stack`).
DETECTION_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(extract_cutouts).parameters.items()
    if parameter.kind is parameter.KEYWORD_ONLY
    and name not in ("size", "error", "weight", "mask", "wcs")}

#: What `_extract_stack` returns: the cutouts as one `_Stack`, then as
#: `CutoutExtraction`, and the validated mosaic (`_Mosaic`).
_StackExtraction = namedtuple("_StackExtraction",
                              ["stack", "table", "segmentation", "background", "mosaic"])

#: Cutouts as ``(n, ny, nx)`` arrays: pixels (NaN beyond the mosaic), bad or
#: neighbour pixels (True), standard deviations (None without an error map),
#: and `SersicFlag` values.
_Stack = namedtuple("_Stack", ["data", "mask", "std", "flag"])


def _extract_stack(mosaic, positions, *, size, error, weight, mask, wcs, subtract_background,
                   box_size, filter_size, threshold, n_pixels, kernel_fwhm, deblend, n_levels,
                   contrast, dilate):
    """`extract_cutouts` with the cutouts as stacked arrays (what `measure` reads)."""
    shape = _check_size(size)
    _check_detection(threshold=threshold, n_pixels=n_pixels, kernel_fwhm=kernel_fwhm,
                     n_levels=n_levels, contrast=contrast, dilate=dilate, deblend=deblend)
    _check_bool("subtract_background", subtract_background)
    image = _unpack(mosaic, error=error, weight=weight, mask=mask, wcs=wcs)
    given = None if positions is None else _pixel_positions(positions, image.wcs,
                                                            image.data.shape)

    bkg = _background(image.data, image.bad, box_size, filter_size)
    background = _full_map(bkg, "background", image.data) if subtract_background else None
    data = _subtract(image.data, background, image.bad)
    convolved = _smooth(data, kernel_fwhm)
    with warnings.catch_warnings():
        # Said below in this function's words, or beside the point with positions.
        warnings.simplefilter("ignore", NoDetectionsWarning)
        segm = _detect(convolved, threshold * _full_map(bkg, "background_rms", image.data),
                       n_pixels, image.bad)
    if segm is not None and deblend:
        segm = _deblend(convolved, segm, n_pixels, n_levels, contrast)

    if given is not None:
        x, y = given
        labels = _labels_at(segm, x, y)
    elif segm is None:
        warnings.warn(
            f"no source detected in the mosaic (threshold={threshold} x background RMS, "
            f"n_pixels={n_pixels}): returning no cutout; lower threshold or n_pixels, or "
            "give positions", NoDetectionsWarning, stacklevel=3)
        x = y = np.empty(0)
        labels = np.empty(0, np.int64)
    else:
        x, y, labels = _centroids(data, segm, convolved, image.bad)

    stack = _cutout_stack(data, image, segm, x, y, labels, shape, dilate)
    areas, fluxes = _segment_sums(data, segm, labels)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "version": {"astromorphnet": _version(), "photutils": photutils.__version__,
                        "astropy": astropy.__version__, "numpy": np.__version__},
            "positions": "detected" if given is None else "given",
            "size": shape, "threshold": threshold, "n_pixels": n_pixels,
            "kernel_fwhm": kernel_fwhm, "deblend": deblend, "dilate": dilate,
            "background_subtracted": bool(subtract_background)}
    table = _table(x, y, labels, areas, fluxes, stack.flag, image.wcs, image.unit, meta)
    return _StackExtraction(stack, table, segm, bkg, image)


def _version():
    from .. import __version__

    return __version__


def _check_size(size):
    shape = (size, size) if np.isscalar(size) else tuple(size)
    if len(shape) != 2 or not all(_is_count(s, 1) for s in shape):
        raise ValueError(f"size must be a positive int or (ny, nx) of positive ints; "
                         f"got {size!r}")
    return tuple(int(s) for s in shape)


def _check_detection(*, threshold, n_pixels, kernel_fwhm, n_levels, contrast, dilate,
                     deblend):
    if not _is_real(threshold) or not 0 < threshold < np.inf:
        raise ValueError(f"threshold must be positive and finite (in units of the "
                         f"background RMS); got {threshold!r}")
    if not _is_count(n_pixels, 1):
        raise ValueError(f"n_pixels must be a positive int; got {n_pixels!r}")
    if kernel_fwhm is not None and not (_is_real(kernel_fwhm) and 0 < kernel_fwhm < np.inf):
        raise ValueError(f"kernel_fwhm must be positive (pixels) or None; got {kernel_fwhm!r}")
    if not _is_count(n_levels, 1):
        raise ValueError(f"n_levels must be a positive int; got {n_levels!r}")
    if not (_is_real(contrast) and 0 <= contrast <= 1):
        raise ValueError(f"contrast must lie in [0, 1]; got {contrast!r}")
    if not _is_count(dilate, 0):
        raise ValueError(f"dilate must be a non-negative int (pixels); got {dilate!r}")
    _check_bool("deblend", deblend)
    # photutils imports scikit-image only when a segment has several peaks: without
    # this check a survey run would fail on its first blend, not on its first call.
    if deblend and importlib.util.find_spec("skimage") is None:
        raise ImportError("deblending (deblend=True) needs scikit-image, an optional "
                          "dependency of photutils: pip install scikit-image, or pass "
                          "deblend=False")


def _is_real(value):
    """A real number, not a bool (True would pass for 1 where a count is meant)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_count(value, minimum):
    return _is_real(value) and np.isfinite(value) and value == int(value) and value >= minimum


def _check_bool(name, value):
    # A string such as "no" is truthy: take only what says yes or no unambiguously.
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")


def _read_ccddata(path):
    """Read a FITS image, from the first HDU holding data, as CCDData."""
    with fits.open(path) as hdul:
        index = next((i for i, hdu in enumerate(hdul)
                      if hdu.is_image and hdu.header.get("NAXIS", 0) > 0), None)
        if index is None:
            raise ValueError(f"{os.fspath(path)!r} holds no image HDU")
        has_unit = "BUNIT" in hdul[index].header
    return CCDData.read(path, hdu=index, unit=None if has_unit else DEFAULT_UNIT)


def _unpack(mosaic, *, error, weight, mask, wcs):
    """Validate the mosaic and its maps once: data, std, bad pixels, wcs, unit."""
    if isinstance(mosaic, (str, os.PathLike)):
        mosaic = _read_ccddata(mosaic)
    unit, meta = None, {}
    if isinstance(mosaic, NDData):
        given = {"wcs": (wcs, mosaic.wcs), "mask": (mask, mosaic.mask),
                 "error": (error, mosaic.uncertainty), "weight": (weight, mosaic.uncertainty)}
        for key, (keyword, attribute) in given.items():
            if keyword is not None and attribute is not None:
                warnings.warn(f"the {key!r} keyword is ignored: the mosaic NDData's own "
                              f"{'uncertainty' if key in ('error', 'weight') else key} is used",
                              AstropyUserWarning, stacklevel=4)
        wcs = wcs if mosaic.wcs is None else mosaic.wcs
        mask = mask if mosaic.mask is None else mosaic.mask
        if mosaic.uncertainty is not None:
            error = _std_array(mosaic.uncertainty, np.shape(mosaic.data),
                               "the mosaic's uncertainty")
            weight = None
        unit, meta, data = mosaic.unit, mosaic.meta or {}, mosaic.data
    elif isinstance(mosaic, u.Quantity):
        unit, data = mosaic.unit, mosaic.value
    else:
        data = mosaic
    data = np.asanyarray(data)
    if data.dtype.kind not in "iuf":
        hint = " (a mask? pass it as mask=...)" if data.dtype.kind == "b" else ""
        raise ValueError(f"the mosaic must hold real numbers; got dtype {data.dtype}{hint}")
    if data.ndim != 2:
        raise ValueError(f"the mosaic must be a 2-D image; got an array of shape {data.shape}")
    if data.size == 0:
        raise ValueError(f"the mosaic is empty (shape {data.shape})")
    # Cutout2D pads with NaN, which needs floats; float32 mosaics stay float32.
    data = np.asarray(data, np.result_type(data.dtype, np.float32))
    if wcs is not None and not isinstance(wcs, WCS):
        raise TypeError(f"wcs must be an astropy.wcs.WCS (Cutout2D needs one); "
                        f"got {type(wcs).__name__}")

    bad = ~np.isfinite(data)
    if mask is not None:
        bad |= _map(mask, "mask", data.shape).astype(bool)
    if error is not None and weight is not None:
        raise ValueError("give either error (standard deviation) or weight (inverse "
                         "variance), not both")
    std = None
    if error is not None:
        std = _map(error, "error", data.shape, unit)
        with np.errstate(invalid="ignore"):
            negative = std < 0
        if negative.any():
            raise ValueError(f"error must be a standard deviation >= 0; {negative.sum()} "
                             f"pixel(s) are negative (min {np.nanmin(std):g})")
        # Zero error, like zero weight, marks pixels without data.
        std = np.where(std == 0, np.inf, std)
    elif weight is not None:
        weight = _map(weight, "weight", data.shape)
        good = np.isfinite(weight) & (weight > 0)
        std = np.full(data.shape, np.inf, data.dtype)
        std[good] = 1.0 / np.sqrt(weight[good])
    if std is not None:
        bad |= ~np.isfinite(std)
    if bad.all():
        raise ValueError("the mosaic has no finite, unmasked pixel (all NaN, masked, of "
                         "zero or negative weight, or of zero error)")
    return _Mosaic(data, std, bad, wcs, DEFAULT_UNIT if unit is None else unit, meta)


def _map(value, what, shape, unit=None):
    """A per-pixel map (array, Quantity or FITS path) of the mosaic's shape."""
    if isinstance(value, (str, os.PathLike)):
        value = fits.getdata(value)
    if isinstance(value, u.Quantity):
        value = value.to_value(unit) if unit is not None else value.value
    value = np.asanyarray(value)
    if value.shape != shape:
        raise ValueError(f"{what} must have the mosaic's shape {shape}; got {value.shape}")
    return value if what == "mask" else np.asarray(value, np.result_type(value, np.float32))


def _pixel_positions(positions, wcs, shape):
    """0-based pixel ``(x, y)`` arrays from any supported form of positions."""
    if isinstance(positions, Table):
        positions = _table_positions(positions)
    if isinstance(positions, SkyCoord):
        if wcs is None or not wcs.has_celestial:
            raise ValueError("positions given as sky coordinates need a celestial WCS: "
                             "pass wcs=..., a CCDData/NDData mosaic with a WCS, or pixel "
                             "positions")
        x, y = wcs.world_to_pixel(positions.reshape(-1))
    else:
        xy = np.asarray(positions, dtype=float)
        if xy.ndim != 2 or xy.shape[1] != 2:
            raise ValueError(f"a positions array must have shape (N, 2) holding pixel "
                             f"(x, y); got shape {xy.shape}")
        x, y = xy.T
    x, y = np.atleast_1d(np.asarray(x, float)), np.atleast_1d(np.asarray(y, float))
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        raise ValueError(f"positions must be finite; {bad.sum()} are not (indices "
                         f"{np.flatnonzero(bad)[:10].tolist()})")
    ny, nx = shape
    outside = (x < -0.5) | (x >= nx - 0.5) | (y < -0.5) | (y >= ny - 0.5)
    if outside.any():
        raise ValueError(
            f"{outside.sum()} position(s) lie outside the {ny}x{nx} mosaic (indices "
            f"{np.flatnonzero(outside)[:10].tolist()}); drop them first, e.g. with "
            "wcs.footprint_contains(coords)")
    return x, y


def _table_positions(table):
    for xname, yname in _PIXEL_COLUMNS:
        if xname in table.colnames and yname in table.colnames:
            return np.column_stack([_pixel_values(table[xname]), _pixel_values(table[yname])])
    for name in _SKY_COLUMNS:
        if name in table.colnames:
            return table[name]
    if "ra" in table.colnames and "dec" in table.colnames:
        ra, dec = (table[c] if getattr(table[c], "unit", None) is not None
                   else np.asarray(table[c]) * u.deg for c in ("ra", "dec"))
        return SkyCoord(u.Quantity(ra), u.Quantity(dec))
    raise ValueError(
        f"a positions table needs pixel columns {' or '.join('/'.join(p) for p in _PIXEL_COLUMNS)}"
        f", a SkyCoord column {' or '.join(_SKY_COLUMNS)}, or ra/dec columns; "
        f"got {table.colnames}")


def _pixel_values(column):
    if getattr(column, "unit", None) is not None:
        return u.Quantity(column).to_value(u.pix)
    return np.asarray(column, float)


class _Background2D(Background2D):
    """`~photutils.background.Background2D`, its mesh median filter vectorised.

    photutils filters the mesh with `scipy.ndimage.generic_filter`, calling
    a NaN-ignoring median once per box (NaN beyond the edges): on a 1024²
    tile that took longer than detecting its sources.  One `numpy.nanmedian`
    over all windows gives the same values (to rounding), ~25x faster.
    """

    def _filter_grid(self, data):
        if tuple(self.filter_size) == (1, 1) or self.filter_threshold is not None:
            return super()._filter_grid(data)
        size = tuple(int(s) for s in self.filter_size)  # odd, photutils checks
        padded = np.pad(data, [(s // 2, s // 2) for s in size], constant_values=np.nan)
        windows = sliding_window_view(padded, size).reshape(*data.shape, -1)
        return np.nanmedian(windows, axis=-1)


def _background(data, bad, box_size, filter_size):
    box = tuple(int(b) for b in np.minimum(np.broadcast_to(box_size, 2), data.shape))
    try:
        return _Background2D(data, box, mask=bad, filter_size=filter_size)
    except ValueError as err:
        # photutils advises its own exclude_percentile, which is not ours to pass.
        if "exclude_percentile" not in str(err):
            raise
        raise ValueError(
            f"cannot estimate the background: every {box[0]}x{box[1]}-pixel box "
            f"(box_size={box_size!r}) has more than 10% of its pixels masked, NaN or of "
            f"zero weight ({bad.mean():.0%} of the {data.shape[0]}x{data.shape[1]} mosaic "
            "is); pass a smaller box_size that fits inside the valid area, or crop the "
            "mosaic to it") from None


def _full_map(bkg, name, data):
    """``bkg.background`` or ``bkg.background_rms``, computed 5-10x faster.

    Background2D resizes its mesh with a clipped bicubic spline
    (`scipy.ndimage.zoom`, grid mode, reflected edges) at every access.  That
    resize is linear and separable, so it equals ``Ry @ mesh @ Rx.T`` with
    ``R`` the resize of the identity along one axis: two small matrix
    products instead of a spline over the whole image, equal to rounding
    (in the dtype of ``data``, as photutils computes them).
    """
    mesh = getattr(bkg, f"{name}_mesh").astype(data.dtype)
    ry, rx = (_resize_matrix(n, int(box), length).astype(data.dtype, copy=False)
              for n, box, length in zip(mesh.shape, bkg.box_size, data.shape))
    full = ry @ mesh @ rx.T
    return np.clip(full, mesh.min(), mesh.max(), out=full)


def _resize_matrix(n, factor, length):
    """``(length, n)``: Background2D's resize of each unit vector of length ``n``."""
    # One 1-D resize per unit vector: zoom's 2-D prefilter of a factor-1
    # axis is not exactly the identity on small meshes.
    columns = [zoom(unit, factor, order=3, mode="reflect", grid_mode=True)[:length]
               for unit in np.eye(n)]
    return np.stack(columns, axis=1)


def _subtract(data, background, bad):
    """Background-subtracted pixels, bad ones 0 so they cannot be detected."""
    out = data - background.astype(data.dtype) if background is not None else data.copy()
    out[bad] = 0.0
    return out


def _smooth(data, kernel_fwhm):
    if kernel_fwhm is None:
        return data
    kernel = make_2dgaussian_kernel(kernel_fwhm, size=2 * int(np.ceil(kernel_fwhm)) + 1)
    # The Gaussian kernel is separable: two 1-D passes (zeros beyond the
    # edges, as astropy's convolve fills them) instead of one 2-D.
    profile = kernel.array.sum(axis=1)
    out = correlate1d(data, profile, axis=0, output=np.float64, mode="constant")
    return correlate1d(out, profile, axis=1, mode="constant")


def _detect(convolved, threshold, n_pixels, bad):
    return detect_sources(convolved, threshold, n_pixels, mask=bad)


def _deblend(convolved, segm, n_pixels, n_levels, contrast):
    # Only a segment of at least two components of n_pixels each, and with two
    # or more local maxima, can split: each component above a deblending
    # threshold holds its own maximum, which is >= its 8 neighbours.  Skipping
    # the others gives the same segmentation, faster; the maxima are sought
    # in each segment's box grown by the one pixel its edge compares with.
    labels = [label for label, area, box in zip(segm.labels, segm.areas, segm.slices)
              if area >= 2 * n_pixels and _n_peaks(convolved, segm.data, label, box) >= 2]
    if not labels:
        return segm
    return deblend_sources(convolved, segm, n_pixels, labels=labels, n_levels=n_levels,
                           contrast=contrast, progress_bar=False)


def _n_peaks(convolved, seg, label, box):
    """Local maxima (>= their 8 neighbours) of ``convolved`` inside segment ``label``."""
    grown = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in box)
    region = convolved[grown]
    peaks = (region == maximum_filter(region, size=3)) & (seg[grown] == label)
    return np.count_nonzero(peaks)


def _centroids(data, segm, convolved, bad):
    """Centroids (of the smoothed image, less noisy) and labels of all segments."""
    catalog = SourceCatalog(data, segm, convolved_data=convolved, mask=bad)
    return (np.asarray(catalog.x_centroid, float), np.asarray(catalog.y_centroid, float),
            np.asarray(catalog.label, np.int64))


def _labels_at(segm, x, y):
    """The segment under each position (0: background, or no segmentation)."""
    if segm is None:
        return np.zeros(len(x), np.int64)
    # Pixel i spans [i - 0.5, i + 0.5): floor(v + 0.5) is the pixel holding v.
    rows = np.floor(y + 0.5).astype(np.intp)
    cols = np.floor(x + 0.5).astype(np.intp)
    return segm.data[rows, cols].astype(np.int64)


def _segment_sums(data, segm, labels):
    """Area [pix²] and flux sum of each label's segment (0, NaN for label 0)."""
    areas, fluxes = np.zeros(len(labels)), np.full(len(labels), np.nan)
    if segm is None:
        return areas, fluxes
    # Within each segment's box: a sum over the whole image per call costs
    # more than all the boxes together.
    boxes = dict(zip(segm.labels, segm.slices))
    for i, label in enumerate(labels):
        if label:
            box = boxes[label]
            inside = segm.data[box] == label
            areas[i] = np.count_nonzero(inside)
            fluxes[i] = data[box][inside].sum(dtype=np.float64)
    return areas, fluxes


def _window(array, y0, x0, shape, fill):
    """``array[y0:y0+ny, x0:x0+nx]`` with ``fill`` where that leaves the array."""
    out = np.full(shape, fill, dtype=array.dtype)
    ylo, xlo = max(y0, 0), max(x0, 0)
    yhi, xhi = min(y0 + shape[0], array.shape[0]), min(x0 + shape[1], array.shape[1])
    if ylo < yhi and xlo < xhi:
        out[ylo - y0:yhi - y0, xlo - x0:xhi - x0] = array[ylo:yhi, xlo:xhi]
    return out


def _disk(radius):
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return xx**2 + yy**2 <= radius**2


def _neighbour_mask(seg, label, footprint):
    """Pixels of every segment but ``label``, grown by ``footprint`` (never onto ``label``)."""
    others = (seg != 0) & (seg != label)
    if footprint is not None and others.any():  # an isolated galaxy has nothing to grow
        others = binary_dilation(others, structure=footprint)
    return others & (seg != label)


def _cutout_stack(data, image, segm, x, y, labels, shape, dilate):
    """The cutouts of ``data`` at positions ``(x, y)`` as one `_Stack`."""
    n, (ny, nx) = len(x), shape
    footprint = _disk(dilate) if dilate else None
    pixels = np.empty((n, ny, nx), data.dtype)
    masks = np.empty((n, ny, nx), bool)
    std = None if image.std is None else np.empty((n, ny, nx), image.std.dtype)
    flags = np.zeros(n, np.int64)
    for i, (xi, yi, label) in enumerate(zip(x, y, labels)):
        # Cutout2D's placement (and rounding) of a cutout, without its WCS copy.
        original, inside = overlap_slices(data.shape, shape, (yi, xi), mode="partial")
        y0, x0 = (o.start - c.start for o, c in zip(original, inside))
        pixels[i] = _window(data, y0, x0, shape, np.nan)
        masks[i] = _window(image.bad, y0, x0, shape, True)
        if segm is not None:
            # Neighbours just beyond the cutout's edge can dilate into it.
            grown = (ny + 2 * dilate, nx + 2 * dilate)
            seg = _window(segm.data, y0 - dilate, x0 - dilate, grown, 0)
            core = (slice(dilate, dilate + ny), slice(dilate, dilate + nx))
            masks[i] |= _neighbour_mask(seg, label, footprint)[core]
        if std is not None:
            std[i] = _window(image.std, y0, x0, shape, np.nan)
        flag = SersicFlag.PADDED if masks[i][inside].shape != shape else SersicFlag(0)
        if masks[i].mean() > MASKED_FRACTION_LIMIT:
            flag |= SersicFlag.MASKED
        flags[i] = flag
    return _Stack(pixels, masks, std, flags)


def _as_ccddata(found):
    """The cutouts of a `_StackExtraction` as `~astropy.nddata.CCDData`, one per source."""
    stack, image, table = found.stack, found.mosaic, found.table
    zeropoint = _meta_zeropoint(image.meta)
    cutouts = []
    for i, (xi, yi) in enumerate(zip(table["x"].value, table["y"].value)):
        wcs = None
        if image.wcs is not None:
            wcs = Cutout2D(image.data, (xi, yi), stack.data.shape[1:], wcs=image.wcs,
                           mode="partial", copy=False).wcs
        # Copies: a cutout kept alone should not keep every other cutout's pixels.
        uncertainty = None if stack.std is None else StdDevUncertainty(stack.std[i].copy())
        meta = {"id": i + 1, "x": float(xi), "y": float(yi), "label": int(table["label"][i]),
                "flag": int(stack.flag[i])}
        if zeropoint is not None:
            meta["zeropoint"] = zeropoint
        cutouts.append(CCDData(stack.data[i].copy(), unit=image.unit, wcs=wcs,
                               mask=stack.mask[i].copy(), uncertainty=uncertainty, meta=meta))
    return cutouts


def _table(x, y, labels, areas, fluxes, flags, wcs, unit, meta):
    table = QTable(meta=meta)
    table["id"] = np.arange(1, len(x) + 1)
    table["x"] = np.asarray(x, float) * u.pix
    table["y"] = np.asarray(y, float) * u.pix
    if wcs is not None and wcs.has_celestial:
        table["skycoord"] = wcs.celestial.pixel_to_world(np.asarray(x, float),
                                                         np.asarray(y, float))
    table["label"] = np.asarray(labels, np.int64)
    table["area"] = np.asarray(areas, float) * u.pix**2
    table["segment_flux"] = np.asarray(fluxes, float) * unit
    table["flag"] = np.asarray(flags, np.int64)
    return table

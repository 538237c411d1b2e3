"""Input preparation of `fit_sersic`: PSF kernels, starting values, bounds, pixels."""

import warnings
from collections.abc import Mapping

import astropy.units as u
import numpy as np
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning

from ..catalog._targets import TARGETS, labels_to_array
from ..simulation._render import PSFKernel
from ..simulation._survey import SurveyConfig
from . import _model

__all__ = ["check_psf", "initial_values", "kernels_for", "limits_for", "native_shape",
           "read_cutouts"]

_BOUND_NAMES = ("r_eff", "sersic_n", "ellipticity", "x_offset", "y_offset")
#: Bounds in pixels, which may also be given as angles.
_PIXEL_BOUNDS = ("r_eff", "x_offset", "y_offset")
_N_RANGE = (0.3, 6.2)  # GalSim's (and the simulations') valid Sérsic indices
#: A GalSim PSF's FWHM must span this many pixels at least: a PSF ten times narrower
#: than a pixel is a pixel scale in the wrong unit, not a survey (they sample their
#: PSFs at 1-5 pixels per FWHM), and would draw a huge FFT.
_MIN_PSF_FWHM_PIXELS = 0.1
#: A PSF image whose centroid lies farther than this (pixels) from its centre
#: shifts the fitted centres by as much.
_PSF_CENTRE_TOLERANCE = 1.0


def check_psf(psf):
    """Validate ``psf``: ``(galsim object, is_image, survey or None, description)``."""
    import galsim

    if isinstance(psf, SurveyConfig):
        objects = psf.psf_objects()
        if len(objects) != 1:
            raise ValueError(f"the survey has {len(objects)} PSFs (PSF variation): pass the "
                             "one PSF of these cutouts as psf=...")
        return objects[0], False, psf, f"{psf.name}: {psf.psf!r}"
    if isinstance(psf, galsim.GSObject):
        return psf, False, None, repr(psf)
    message = (f"psf must be a galsim.GSObject, a 2-D PSF image array or a SurveyConfig; "
               f"got {type(psf).__name__}")
    if not isinstance(psf, (np.ndarray, list, tuple)):
        raise TypeError(message)
    try:
        array = np.asarray(psf)
    except ValueError:  # ragged
        raise TypeError(message) from None
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{message} of dtype {array.dtype}: a PSF image must hold real numbers")
    array = array.astype(float)
    if array.ndim != 2 or not np.isfinite(array).all() or not array.sum() > 0:
        raise ValueError(f"a PSF image must be a finite 2-D array of positive sum; got "
                         f"shape {array.shape}")
    yy, xx = np.indices(array.shape)
    cy, cx = ((array * c).sum() / array.sum() for c in (yy, xx))
    offset = np.hypot(cx - (array.shape[1] - 1) / 2.0, cy - (array.shape[0] - 1) / 2.0)
    if offset > _PSF_CENTRE_TOLERANCE:
        warnings.warn(f"the PSF image of shape {array.shape} is centred at pixel (x, y) = "
                      f"({cx:.1f}, {cy:.1f}), {offset:.1f} pixels from the image centre: the "
                      "fitted x_offset/y_offset shift by as much; recentre the PSF",
                      AstropyUserWarning, stacklevel=3)
    # Sampled at the cutouts' pixel scale: work in pixels (scale 1).
    image = galsim.Image(array / array.sum(), scale=1.0)
    return galsim.InterpolatedImage(image), True, None, f"image of shape {array.shape}"


def native_shape(stamps, i):
    """Cutout ``i``'s own shape (cutouts in a list may differ)."""
    if stamps._items is None:
        return stamps.shapes[0]
    return stamps._items[i][0].shape


def kernels_for(psf_object, is_image, pixel_scales, shapes):
    """One `PSFKernel` (and the PSF's half-light radius) per pixel scale."""
    if is_image:  # sampled at the cutouts' scale, whatever it is: work in pixels
        keys = [1.0] * len(shapes)
    else:
        if np.isnan(pixel_scales).any():
            raise ValueError("a GalSim PSF needs the cutouts' pixel scale: pass pixel_scale=... "
                             "or give the cutouts a celestial WCS")
        keys = [float(s) for s in pixel_scales]
        _check_psf_sampling(psf_object, min(keys), max(max(shape) for shape in shapes))
    kernels = {}
    for key, shape in zip(keys, shapes):
        if key not in kernels:
            kernels[key] = (PSFKernel(psf_object, key), _half_light_radius(psf_object, key))
        kernels[key][0].wings(max(shape))  # drawn once here, not in every worker
    return kernels, keys


def _check_psf_sampling(psf_object, pixel_scale, stamp_size):
    """Refuse a GalSim PSF that a pixel scale in the wrong unit makes absurd."""
    fwhm = psf_object.calculateFWHM()
    pixels = fwhm / pixel_scale
    if not _MIN_PSF_FWHM_PIXELS <= pixels <= stamp_size:
        raise ValueError(
            f"the PSF's FWHM ({fwhm:.3g} arcsec) spans {pixels:.3g} pixels of "
            f"{pixel_scale:.3g} arcsec, outside {_MIN_PSF_FWHM_PIXELS}-{stamp_size} (the "
            "cutout size): check pixel_scale (arcsec per pixel) and the PSF's size (arcsec)")


def _half_light_radius(psf_object, pixel_scale, size=65):
    """The PSF's (circular) half-light radius in pixels."""
    image = psf_object.drawImage(nx=size, ny=size, scale=pixel_scale).array
    y, x = np.mgrid[:size, :size] - (size - 1) / 2.0
    radius = np.hypot(x, y).ravel()
    order = np.argsort(radius)
    cumulative = np.cumsum(image.ravel()[order])
    return float(radius[order][np.argmax(cumulative >= 0.5 * cumulative[-1])])


def initial_values(initial, stamps):
    """Per-cutout dicts of starting values (NaN: from the moments)."""
    n = len(stamps)
    names = ("flux", "r_eff", "sersic_n", "ellipticity", "pa", "x_offset", "y_offset")
    values = {name: np.full(n, np.nan) for name in names}
    if initial is not None:
        if isinstance(initial, Table):
            if len(initial) != n:
                raise ValueError(f"initial has {len(initial)} rows but X has {n} cutouts; give "
                                 "one row of starting values per cutout")
            for name in TARGETS:
                if name in initial.colnames:
                    values[name] = labels_to_array(initial, (name,), allow_nan=True,
                                                   pixel_scale=stamps.pixel_scale)[:, 0]
            for name, aliases, unit in (("pa", ("pa",), u.deg), ("x_offset", ("x_offset", "dx"),
                                        u.pix), ("y_offset", ("y_offset", "dy"), u.pix)):
                column = next((initial[a] for a in aliases if a in initial.colnames), None)
                if column is not None:
                    quantity = u.Quantity(column, unit)
                    values[name] = quantity.to_value(unit).astype(float)
        else:
            try:
                array = np.asarray(initial, dtype=float)
            except (TypeError, ValueError):
                raise TypeError(f"initial must be a Table of starting values or an array (n, "
                                f"4) of {list(TARGETS)}; got {type(initial).__name__}"
                                ) from None
            if array.ndim != 2:
                raise ValueError(f"initial must be an array (n, 4) of {list(TARGETS)}, one "
                                 f"row per cutout; got shape {array.shape}")
            array = labels_to_array(array, TARGETS, allow_nan=True)
            if len(array) != n:
                raise ValueError(f"initial has {len(array)} rows but X has {n} cutouts; give "
                                 "one row of starting values per cutout")
            for j, name in enumerate(TARGETS):
                values[name] = array[:, j]
        if "mag" in values:
            values["flux"] = 10 ** (-0.4 * (values.pop("mag") - stamps.zeropoint))
    return [{name: values[name][i] for name in names} for i in range(n)]


def limits_for(bounds, shapes, pixel_scales):
    """Per-cutout `_model.Limits` from user ``bounds`` and the default ones.

    Bounds on ``r_eff`` and the centre's offsets may be angles, converted
    to pixels with each cutout's pixel scale (arcsec/pixel, NaN: unknown).
    """
    if bounds is not None and not isinstance(bounds, Mapping):
        raise TypeError(f"bounds must be a dict {{name: (low, high)}}; got "
                        f"{type(bounds).__name__}")
    bounds = dict(bounds or {})
    unknown = set(bounds) - set(_BOUND_NAMES)
    if unknown:
        raise ValueError(f"unknown bound(s) {sorted(unknown)}; bounds can be set for "
                         f"{list(_BOUND_NAMES)}")
    checked = {name: _bound(name, value) for name, value in bounds.items()}
    low, high, _ = checked.get("sersic_n", (*_N_RANGE, False))
    if low < _N_RANGE[0] or high > _N_RANGE[1]:
        raise ValueError(f"bounds['sersic_n'] = ({low}, {high}) must lie within the valid "
                         f"{_N_RANGE[0]}-{_N_RANGE[1]}")
    if "r_eff" in checked and checked["r_eff"][0] <= 0:
        raise ValueError(f"bounds['r_eff'] = {checked['r_eff'][:2]} must be positive")
    low, high, _ = checked.get("ellipticity", (0.0, 0.95, False))
    if low < 0 or high >= 1:
        raise ValueError(f"bounds['ellipticity'] = ({low}, {high}) must lie in [0, 1)")
    angular = [name for name, (_, _, in_arcsec) in checked.items() if in_arcsec]
    if angular and np.isnan(pixel_scales).any():
        raise ValueError(f"bounds {angular} are angles but some cutouts have no pixel scale: "
                         "pass pixel_scale=..., give the cutouts a celestial WCS, or give "
                         "the bounds in pixels")
    out = []
    for (ny, nx), scale in zip(shapes, pixel_scales):
        # The scale is positive (checked by as_stamps), so pixel bounds keep their order.
        pixels = {name: (low / scale, high / scale) if in_arcsec else (low, high)
                  for name, (low, high, in_arcsec) in checked.items()}
        out.append(_model.Limits(
            r_eff=pixels.get("r_eff", (0.1, 4.0 * max(ny, nx))),
            sersic_n=pixels.get("sersic_n", _N_RANGE),
            ellipticity=pixels.get("ellipticity", (0.0, 0.95)),
            x_offset=pixels.get("x_offset", (-nx / 4.0, nx / 4.0)),
            y_offset=pixels.get("y_offset", (-ny / 4.0, ny / 4.0))))
    return out


def _bound(name, value):
    """``(low, high, in_arcsec)`` of a user bound: numbers in pixels (or arcsec), or unitless."""
    unit = u.pix if name in _PIXEL_BOUNDS else u.dimensionless_unscaled
    in_arcsec = False
    if isinstance(value, u.Quantity) or (isinstance(value, (list, tuple))
                                         and any(isinstance(v, u.Quantity) for v in value)):
        try:
            value = u.Quantity(value)
            if name in _PIXEL_BOUNDS and value.unit.physical_type == "angle":
                value, in_arcsec = value.to_value(u.arcsec), True
            else:
                value = value.to_value(unit)
        except (u.UnitsError, TypeError):
            want = "in pixels or an angle" if name in _PIXEL_BOUNDS else "dimensionless"
            raise ValueError(f"bounds[{name!r}] = {value!r} must be {want}") from None
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"bounds[{name!r}] must be a (low, high) pair; "
                         f"got {value!r}") from None
    if not low < high:
        raise ValueError(f"bounds[{name!r}] = ({low}, {high}) is empty: low must be < high")
    return low, high, in_arcsec


def read_cutouts(stamps, start, stop):
    """``(data, mask, std, flag)`` of cutouts ``start:stop`` at their native shape."""
    if stamps._items is None:
        batch = stamps.read(start, stop, stamps.shapes[0])
        return [(batch.data[k], batch.mask[k], None if batch.std is None else batch.std[k],
                 batch.flag[k]) for k in range(stop - start)]
    out = []
    for i in range(start, stop):
        batch = stamps.read(i, i + 1, native_shape(stamps, i))
        out.append((batch.data[0], batch.mask[0], None if batch.std is None else batch.std[0],
                    batch.flag[0]))
    return out

"""Neighbour masks for cutouts made without a segmentation of their mosaic."""

import copy
import warnings

import numpy as np
from astropy.nddata import NDData
from astropy.stats import sigma_clipped_stats
from astropy.utils.exceptions import AstropyUserWarning
from photutils.utils import NoDetectionsWarning

from .._input import _mask_array, _std_array
from ._extract import (_check_detection, _deblend, _detect, _disk, _labels_at,
                       _neighbour_mask, _smooth)

__all__ = ["mask_neighbours"]


def mask_neighbours(cutouts, *, threshold=1.5, n_pixels=10, kernel_fwhm=3.0, deblend=True,
                    n_levels=32, contrast=0.001, dilate=2):
    """Mask the neighbours of the central galaxy in ready-made cutouts.

    `extract_cutouts` masks neighbours with the segmentation of the whole
    mosaic.  Cutouts made elsewhere (a survey's cutout service, another
    pipeline, a simulation) come without one: this segments each cutout
    on its own, the same way (sigma-clipped background level and noise, or
    the cutout's uncertainty, then photutils' `~photutils.segmentation.detect_sources`
    and `~photutils.segmentation.deblend_sources`), and masks every segment
    but the one under the central pixel, grown by ``dilate`` pixels.  When
    no segment covers the centre, every detected source is a neighbour.

    Parameters
    ----------
    cutouts : array-like, `~astropy.nddata.NDData` or list of `~astropy.nddata.NDData`
        An array ``(n, ny, nx)`` (a `numpy.ma.MaskedArray` keeps its mask),
        a list of 2-D `~astropy.nddata.NDData`/`~astropy.nddata.CCDData`
        or arrays, or one 2-D `~astropy.nddata.NDData`.
    threshold : float, optional
        Detection threshold per pixel of the smoothed cutout, in units of
        the background noise.
    n_pixels : int, optional
        Minimum number of connected pixels of a source (and of a deblended
        component).
    kernel_fwhm : float or None, optional
        FWHM in pixels of the Gaussian that smooths the cutout before
        detection; None does not smooth.
    deblend : bool, optional
        Split blended sources, so a neighbour overlapping the galaxy is
        masked too (needs scikit-image).
    n_levels : int, optional
        Number of deblending thresholds.
    contrast : float, optional
        Minimum flux fraction of a deblended component.
    dilate : int, optional
        Radius in pixels by which neighbours' segments grow before masking
        (their faint wings lie outside the segment).

    Returns
    -------
    masked : `numpy.ma.MaskedArray` or list
        The cutouts with their neighbours masked, in the form given: a
        masked array for an array (NaN/inf pixels masked too), otherwise a
        list of shallow copies of the NDData (data shared, masks new: the
        old mask or the neighbours) or masked arrays; one NDData for one.
        An empty stack or list gives an empty one.

    Raises
    ------
    ValueError
        If the cutouts are not 2-D real images, an uncertainty is
        negative, or a detection setting is out of range.
    TypeError
        If ``deblend`` is not a bool.
    ImportError
        If ``deblend`` is True and scikit-image is not installed.

    Warns
    -----
    astropy.utils.exceptions.AstropyUserWarning
        Naming the indices of blank cutouts (no finite unmasked pixel, or
        all of them equal): there is nothing to segment, so their masks
        come back unchanged (NaN/inf pixels masked) and the other cutouts
        are processed as usual.

    Examples
    --------
    >>> import numpy as np
    >>> from astromorphnet.cutouts import mask_neighbours
    >>> yy, xx = np.mgrid[:32, :32]
    >>> galaxy = 40 * np.exp(-((xx - 15.5) ** 2 + (yy - 15.5) ** 2) / 8)
    >>> neighbour = 40 * np.exp(-((xx - 4) ** 2 + (yy - 26) ** 2) / 4)
    >>> noise = np.random.default_rng(0).normal(0, 1, (32, 32))
    >>> masked = mask_neighbours((galaxy + neighbour + noise)[np.newaxis])
    >>> bool(masked.mask[0, 26, 4]), bool(masked.mask[0, 16, 16])
    (True, False)
    """
    _check_detection(threshold=threshold, n_pixels=n_pixels, kernel_fwhm=kernel_fwhm,
                     n_levels=n_levels, contrast=contrast, dilate=dilate, deblend=deblend)
    settings = dict(threshold=threshold, n_pixels=n_pixels, kernel_fwhm=kernel_fwhm,
                    deblend=deblend, n_levels=n_levels, contrast=contrast,
                    footprint=_disk(dilate) if dilate else None)
    blank = []
    if isinstance(cutouts, NDData):
        masked = _mask_nddata(cutouts, 0, settings, blank)
    elif isinstance(cutouts, (list, tuple)):
        masked = [_mask_nddata(c, i, settings, blank) if isinstance(c, NDData)
                  else _mask_item(np.ma.asanyarray(c), i, settings, blank)
                  for i, c in enumerate(cutouts)]
    else:
        masked = _mask_stack(np.ma.asanyarray(cutouts), settings, blank)
    if blank:
        warnings.warn(f"{len(blank)} cutout(s) are blank (no finite unmasked pixel, or all "
                      f"equal), indices {blank[:10]}{' ...' if len(blank) > 10 else ''}: "
                      "nothing to segment, their masks are returned unchanged",
                      AstropyUserWarning, stacklevel=2)
    return masked


def _mask_stack(stack, settings, blank, indices=None):
    """The stack as a masked array, neighbours masked; ``indices`` name its cutouts."""
    if stack.ndim != 3:
        hint = ": for one image pass image[np.newaxis]" if stack.ndim == 2 else ""
        raise ValueError(f"cutouts must be 2-D images, stacked (n, ny, nx); got an array of "
                         f"shape {stack.shape}{hint}")
    _check_real(stack, "cutouts" if indices is None else f"cutouts[{indices[0]}]")
    data = np.ma.getdata(stack)
    bad = np.ma.getmaskarray(stack) | ~np.isfinite(data)
    for i, index in enumerate(range(len(stack)) if indices is None else indices):
        bad[i] |= _neighbours(data[i], bad[i], None, settings, index, blank)
    return np.ma.MaskedArray(data, mask=bad)


def _mask_item(array, index, settings, blank):
    """Item ``index`` of a list: a 2-D array, returned as a masked array."""
    if array.ndim != 2:
        raise ValueError(f"each cutout in a list must be 2-D; cutouts[{index}] has shape "
                         f"{array.shape}")
    return _mask_stack(array[np.newaxis], settings, blank, [index])[0]


def _check_real(array, what):
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{what} must hold real numbers; got dtype {array.dtype}")


def _mask_nddata(nd, index, settings, blank):
    _check_real(np.asanyarray(nd.data), f"cutouts[{index}]")
    data = np.asarray(nd.data, float)
    if data.ndim != 2:
        raise ValueError(f"each NDData cutout must be 2-D; cutouts[{index}] has shape "
                         f"{data.shape}")
    bad = ~np.isfinite(data)
    if nd.mask is not None:
        bad |= _mask_array(nd.mask, data.shape, f"cutouts[{index}].mask")
    std = None
    if nd.uncertainty is not None:
        std = _std_array(nd.uncertainty, data.shape, f"cutouts[{index}].uncertainty")
    masked = copy.copy(nd)
    masked.mask = bad | _neighbours(data, bad, std, settings, index, blank)
    return masked


def _neighbours(image, bad, std, settings, index, blank):
    """Mask of every source in ``image`` but the one under its central pixel.

    A blank cutout (nothing finite and unmasked, or all of it equal) has no
    source: its index joins ``blank`` and nothing is masked.
    """
    good = image[~bad]
    if good.size == 0 or np.ptp(good) == 0:
        blank.append(index)
        return np.zeros(image.shape, bool)
    clean = np.where(bad, 0.0, image)
    level, _, rms = sigma_clipped_stats(clean, mask=bad)
    noise = rms if std is None else np.where(np.isfinite(std) & (std > 0), std, rms)
    convolved = _smooth(np.where(bad, 0.0, clean - level), settings["kernel_fwhm"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)  # an isolated galaxy is fine
        segm = _detect(convolved, settings["threshold"] * noise, settings["n_pixels"], bad)
    if segm is None:
        return np.zeros(image.shape, bool)
    if settings["deblend"]:
        segm = _deblend(convolved, segm, settings["n_pixels"], settings["n_levels"],
                        settings["contrast"])
    ny, nx = image.shape
    centre = _labels_at(segm, np.array([(nx - 1) / 2]), np.array([(ny - 1) / 2]))[0]
    return _neighbour_mask(segm.data, centre, settings["footprint"])

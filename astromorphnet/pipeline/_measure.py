"""From survey images to one Sérsic catalog: detection, cutouts, prediction.

`measure` chains `~astromorphnet.cutouts.extract_cutouts` and an estimator's
``predict`` over one or several images, optionally cut into overlapping
tiles read lazily from disk, optionally on a Dask cluster.  The work is
split into jobs (one per image, or per tile), each self-contained and
picklable, so that the single-process run and a cluster run execute the
very same code on the very same inputs.
"""

import inspect
import os
import time
import warnings
from collections import namedtuple
from numbers import Integral, Real

import astropy.units as u
import numpy as np
from astropy import log
from astropy.io import fits
from astropy.nddata import CCDData, NDData, StdDevUncertainty
from astropy.table import QTable, vstack
from astropy.wcs import WCS, FITSFixedWarning
from photutils.utils import NoDetectionsWarning

from .._input import (ZEROPOINT_KEYS, _meta_lookup, _pixel_unit, _std_array,
                      _unit_zeropoint, _wcs_pixel_scale, _zeropoint_value, check_unit)
from ..cutouts._extract import (DETECTION_DEFAULTS, _check_bool, _check_detection, _check_size,
                                _extract_stack)
from ..pretrained._registry import DEFAULT_MODEL
from ._tiles import default_overlap, in_core, tile_grid, whole_image

__all__ = ["measure"]

#: HDU types read as one image.
_HDUS = (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)

#: Extensions of estimator files: a string ending so names a file, never a shipped model.
_MODEL_SUFFIXES = (".pkl", ".pickle", ".joblib", ".keras", ".h5", ".hdf5")

#: Pixels of an image or map: a FITS image (``path``, ``hdu``) and the
#: ``slices`` of it to read, or an in-memory ``array``.
_Section = namedtuple("_Section", ["path", "hdu", "slices", "array"])

#: How a tile's pixels become what the model reads: ``pixels * factor`` in
#: ``unit``, with AB ``zeropoint`` (NaN: none) and ``pixel_scale`` (NaN: unknown).
_Conversion = namedtuple("_Conversion", ["factor", "unit", "zeropoint", "pixel_scale"])

#: One unit of work: a tile of an image (or a whole image) and all it needs.
_Job = namedtuple("_Job", ["image", "name", "tile", "n_tiles", "data", "error", "weight", "mask",
                           "unit", "conversion"])

#: Options every job shares.
_Settings = namedtuple("_Settings", ["size", "batch_size", "detection"])

#: What a job returns: the kept rows (None when none), the estimator's catalog
#: meta, the number of sources detected in the whole tile, and its wall time.
_Result = namedtuple("_Result", ["table", "meta", "n_detected", "seconds"])

#: An image ready to be cut into jobs.
_Image = namedtuple("_Image", ["index", "name", "shape", "data", "error", "weight", "mask", "wcs",
                               "unit", "zeropoint"])


def measure(images, model=None, *, error=None, weight=None, mask=None, size=64,
            zeropoint=None, batch_size=256, tile_size=None, tile_overlap=None, client=None,
            progress=None, **detection):
    """Measure the Sérsic parameters of every galaxy in survey images.

    Each image (or each tile of it) goes through
    `~astromorphnet.cutouts.extract_cutouts` (background, detection,
    deblending, cutouts with neighbours masked) and the estimator's
    ``predict``; the rows of all images form one catalog.

    Parameters
    ----------
    images : path, `~astropy.nddata.NDData`, HDU, or list of them
        One image or a list: FITS file paths (read from the first HDU holding
        an image, one section at a time), `~astropy.nddata.CCDData` /
        `~astropy.nddata.NDData` (their ``wcs``, ``unit``, ``mask``,
        ``uncertainty`` and ``meta`` are used), or
        `~astropy.io.fits.PrimaryHDU` / `~astropy.io.fits.ImageHDU` /
        `~astropy.io.fits.HDUList`.  The unit comes from the NDData or the
        ``BUNIT`` keyword; the WCS from the NDData or the header.
    model : estimator, path or str, optional
        A fitted astromorphnet estimator, the path of one saved with its
        ``save`` (`~astromorphnet.load`), or the name of a shipped model
        (`~astromorphnet.list_pretrained`).  Default: the shipped
        ``"candels-f160w"`` (`~astromorphnet.pretrained.DEFAULT_MODEL`).
    error, weight, mask : array-like, path, or list of them, optional
        Per-pixel standard deviation, inverse variance, or bad-pixel mask
        (True = bad) of the image, as for
        `~astromorphnet.cutouts.extract_cutouts`; with several images, a
        list holding one per image (None where there is none).  FITS paths
        are read one section at a time, like the images.
    size : int or tuple of int, optional
        Cutout shape ``(ny, nx)``; an int gives a square.  Cutouts of
        another shape than the model's input are centre-cropped or padded
        (and flagged) by ``predict``.
    zeropoint : float or list of float, optional
        AB zeropoint of the image's pixels in their own unit (one per image
        in a list, None where the header has one).  Default: the header's
        (``zeropoint``, ``MAGZERO``, ``PHOTZP`` or ``MAGZPT``; else HST's
        ``PHOTFLAM`` and ``PHOTPLAM``), or the one a flux-density unit fixes.
    batch_size : int, optional
        Cutouts given to ``predict`` at a time.
    tile_size : int or tuple of int, optional
        Cut each image into tiles of this shape ``(ny, nx)``, overlap
        included, so that memory is bounded by the tile, not the image.
        Default: whole images.
    tile_overlap : int, optional
        Pixels shared by neighbouring tiles; at least the cutout size.
        Default: the cutout size plus 32 pixels.
    client : ``dask.distributed.Client`` or str, optional
        Run the images / tiles as tasks on this Dask cluster (or on the
        scheduler at this address).  The model is sent once to each worker
        and loaded there from its file; FITS paths must be readable from
        the workers.  Default: run here, in this process.
    progress : bool, optional
        Log one line per image or tile through ``astropy.log`` (INFO).
        Default (None): when there is more than one image or tile.
    **detection
        Options of `~astromorphnet.cutouts.extract_cutouts` (``threshold``,
        ``n_pixels``, ``kernel_fwhm``, ``deblend``, ``box_size``,
        ``subtract_background``, ``dilate``, ...).

    Returns
    -------
    catalog : `~astropy.table.QTable`
        One row per galaxy: ``image`` (with several images: the file name,
        or the 0-based index when not all are files), ``label`` (1, 2, ...
        within each image), ``x``/``y`` [pix] (0-based centroid in the
        image), ``ra``/``dec`` [deg] and ``sky_centroid`` (ICRS
        `~astropy.coordinates.SkyCoord`) when every image has a celestial
        WCS, ``tile`` (0-based, when tiled), ``area`` [pix²] of the source's
        segment, then the estimator's columns: its Sérsic parameters with
        units (and ``<target>_err``/``_lo``/``_hi`` when it gives
        uncertainties) and ``flag``.  ``flag`` joins the cutout's
        `~astromorphnet.catalog.SersicFlag` bits (``PADDED`` at the image's
        edge, ``MASKED`` when much of it is masked) with the prediction's
        (``CROPPED``, ``OUT_OF_RANGE``).  ``meta`` holds the model's
        identity (``estimator``, ``model``, ``model_id``, and
        ``model_name`` or ``model_path``), ``astromorphnet_version``,
        ``images``, ``zeropoints``, ``size``, the tiling, the detection
        options and, for an estimator with uncertainties, ``coverage``.

    Raises
    ------
    TypeError
        If an image, ``model``, ``client`` or an option is of a wrong type.
    FileNotFoundError
        If an image, map or model file does not exist.
    ValueError
        If lists of images and maps differ in length, an image is not 2-D
        or a map not of its shape, an option is out of range, or a
        zeropoint is needed (the model measures magnitudes, or its pixel
        unit differs from the image's) and none is known.
    astropy.units.UnitsError
        If the image's unit cannot be brought to the model's.

    Warns
    -----
    photutils.utils.NoDetectionsWarning
        When no galaxy is found in any image (the catalog is then empty).

    Notes
    -----
    Units: the pixels are brought to what the model was fitted on.  A model
    fitted on unitless simulations (pixel counts of zeropoint
    ``model.zeropoint``) reads an image in electron/s, or any unit, rescaled
    by ``10**(0.4 * (model.zeropoint - image zeropoint))``; a model fitted
    with a pixel unit gets the image converted to that unit.

    Tiles: each tile is searched on its own, with its own background
    model (`~photutils.background.Background2D` on the tile), so sources
    near faint extended features may differ slightly from a whole-image run.
    A galaxy is kept by the one tile whose core (the tile less half the
    overlap on each inner side) holds its centroid; with an overlap of at
    least the cutout size, its cutout lies wholly inside that tile.

    Examples
    --------
    >>> import astromorphnet
    >>> catalog = astromorphnet.measure("mosaic.fits", "model.pkl",
    ...                                 tile_size=2048)  # doctest: +SKIP
    >>> catalog["label", "sky_centroid", "mag", "r_eff", "flag"][:3]  # doctest: +SKIP
    """
    images, single = _as_list(images, "images")
    n = len(images)
    maps = {name: _per_image(value, n, single, name)
            for name, value in (("error", error), ("weight", weight), ("mask", mask))}
    zeropoints = _per_image(zeropoint, n, single, "zeropoint")
    shape = _check_size(size)
    _check_int("batch_size", batch_size, 1)
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be True, False or None; got {progress!r}")
    tiling = _check_tiling(tile_size, tile_overlap, shape)
    detection = _detection_options(detection)
    estimator, identity, path = _resolve_model(model)
    sources = [_open_image(image, i, {k: v[i] for k, v in maps.items()}, zeropoints[i])
               for i, image in enumerate(images)]
    jobs = [job for source in sources for job in _jobs(source, tiling, estimator)]
    settings = _Settings(shape, int(batch_size), detection)
    log_each = progress if progress is not None else len(jobs) > 1

    def done(job, result):
        if log_each:
            _log(job, result)

    if client is None:
        estimator = _catalog_output(estimator)
        results = []
        for job in jobs:
            results.append(run_job(job, estimator, settings))
            done(job, results[-1])
    else:
        from ._distributed import run_on_cluster

        results = run_on_cluster(client, jobs, estimator, path, settings, done)
    return _assemble(sources, jobs, results, identity, tiling, settings)


def _detection_options(given):
    """All detection options of `extract_cutouts`, ``given`` ones checked."""
    unknown = sorted(set(given) - set(DETECTION_DEFAULTS))
    if unknown:
        raise TypeError(f"measure got unknown option(s) {', '.join(map(repr, unknown))}; its "
                        f"detection options are {', '.join(DETECTION_DEFAULTS)}")
    options = {**DETECTION_DEFAULTS, **given}
    _check_detection(**{key: options[key]
                        for key in inspect.signature(_check_detection).parameters})
    _check_bool("subtract_background", options["subtract_background"])
    return options


def _as_list(value, what):
    """``(list, single)``: one image is a list of one."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{what} is empty: give at least one image")
        return list(value), False
    return [value], True


def _per_image(value, n, single, what):
    """One value per image: a list for several images, anything for one."""
    if single:
        if isinstance(value, (list, tuple)) and what == "zeropoint":
            raise TypeError(f"zeropoint must be a number for one image; got {value!r}")
        return [value]
    if value is None:
        return [None] * n
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"with {n} images, {what} must be a list of {n} (None where an "
                        f"image has none); got {type(value).__name__}")
    if len(value) != n:
        raise ValueError(f"{what} has {len(value)} entries for {n} images: give one per "
                         "image (None where an image has none)")
    return list(value)


def _check_int(name, value, minimum):
    if (not isinstance(value, Integral) or isinstance(value, (bool, np.bool_))
            or value < minimum):
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")


def _check_tiling(tile_size, tile_overlap, size):
    """``(tile shape, overlap)``, or None for whole images."""
    if tile_size is None:
        if tile_overlap is not None:
            raise ValueError("tile_overlap is given without tile_size: give tile_size to "
                             "cut the images into tiles")
        return None
    overlap = default_overlap(size) if tile_overlap is None else tile_overlap
    _check_int("tile_overlap", overlap, max(size))
    tile = (tile_size,) * 2 if np.isscalar(tile_size) else tuple(tile_size)
    if len(tile) != 2:
        raise ValueError(f"tile_size must be an int or (ny, nx); got {tile_size!r}")
    for side in tile:
        if (not isinstance(side, Integral) or isinstance(side, (bool, np.bool_))
                or side <= 2 * overlap):
            raise ValueError(
                f"tile_size must be ints larger than twice the overlap ({overlap} pixels, "
                f"at least the cutout size {max(size)}), so that tiles have a core of "
                f"their own; got tile_size={tile_size!r}")
    return tuple(int(s) for s in tile), int(overlap)


# -- the model -------------------------------------------------------------
def _resolve_model(model):
    """``(estimator, identity meta, file path or None)`` of ``model``."""
    from sklearn.utils.validation import check_is_fitted

    from ..estimators import BaseSersicRegressor, load

    if model is None:
        model = DEFAULT_MODEL
    if isinstance(model, BaseSersicRegressor):
        check_is_fitted(model)
        # A shipped model loaded by the caller keeps its identity in the catalog.
        name = getattr(model, "pretrained_name_", None)
        return model, ({} if name is None else {"model_name": name}), None
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a fitted astromorphnet estimator, the path of a saved "
                        f"one, or a shipped model name; got {type(model).__name__}")
    path = os.path.expanduser(os.fspath(model))
    if os.path.isfile(path):
        return load(path), {"model_path": os.path.abspath(path)}, os.path.abspath(path)
    if (isinstance(model, str) and os.sep not in model and "/" not in model
            and not model.lower().endswith(_MODEL_SUFFIXES)):
        from ..pretrained import load_pretrained

        return load_pretrained(model), {"model_name": model}, None
    raise FileNotFoundError(f"model file {path!r} does not exist; give a fitted estimator, "
                            "the path of one saved with its save(), or a shipped model name "
                            "(astromorphnet.list_pretrained())")


def _catalog_output(estimator):
    """The estimator, or a view of it whose ``predict`` returns a catalog."""
    if estimator._output_kind() == "catalog":
        return estimator
    # Sharing the fitted state avoids copying (and re-serialising) the network.
    view = object.__new__(type(estimator))
    view.__dict__.update(estimator.__dict__)
    return view.set_output(predict="catalog")


def _model_zeropoint(estimator):
    """The AB zeropoint of the pixels the model was fitted on (NaN: unknown)."""
    if estimator.zeropoint is not None:
        return float(estimator.zeropoint)
    unit = _pixel_unit(estimator.unit_)
    if unit is None:
        return np.nan
    try:
        return float((1 * unit).to_value(u.ABmag, u.zero_point_flux(u.photometric.AB)))
    except u.UnitConversionError:
        return np.nan


# -- the images ------------------------------------------------------------
def _open_image(image, index, maps, zeropoint):
    """Validate one image and its maps; read headers, not pixels."""
    what = f"images[{index}]"
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        data, header = _fits_plane(path, what)
        name = path
        unit = _header_unit(header, f"{what} ({path!r})")
        meta = header
    elif isinstance(image, NDData):
        name = index
        data = _Section(None, None, None, _array(image.data, what))
        unit, meta = _pixel_unit(image.unit), image.meta or {}
        for key, own in (("mask", image.mask), ("error", image.uncertainty),
                         ("weight", image.uncertainty)):
            if own is not None and maps[key] is not None:
                raise ValueError(f"{what} is an NDData with its own "
                                 f"{'uncertainty' if key != 'mask' else 'mask'}: give "
                                 f"{key} either there or as the {key} keyword, not both")
        if image.mask is not None:
            maps["mask"] = np.broadcast_to(np.asarray(image.mask, bool), data.array.shape)
        if image.uncertainty is not None:
            maps["error"] = _std_array(image.uncertainty, data.array.shape,
                                       f"{what}.uncertainty")
        header = None
    elif isinstance(image, (fits.HDUList, *_HDUS)):
        name = index
        hdu = _image_hdu(image, what) if isinstance(image, fits.HDUList) else image
        if hdu.data is None:
            raise ValueError(f"{what} is an HDU without data")
        data = _Section(None, None, None, _array(hdu.data, what))
        header = hdu.header
        if isinstance(image, fits.HDUList) and image[0] is not hdu:
            header = fits.Header(image[0].header)
            header.update(hdu.header)
        unit = _header_unit(header, what)
        meta = header
    else:
        raise TypeError(f"{what} must be a FITS path, an NDData/CCDData or a FITS HDU "
                        f"(PrimaryHDU, ImageHDU, HDUList); got {type(image).__name__}"
                        + (": wrap an array in astropy.nddata.NDData(array, wcs=..., "
                           "unit=...)" if isinstance(image, np.ndarray) else ""))
    shape = _shape(data)
    wcs = image.wcs if isinstance(image, NDData) else _header_wcs(header)
    if wcs is not None and not isinstance(wcs, WCS):
        raise TypeError(f"{what}'s WCS must be an astropy.wcs.WCS; got {type(wcs).__name__}")
    sections = {key: _map_section(value, key, shape, what) for key, value in maps.items()}
    if sections["error"] is not None and sections["weight"] is not None:
        raise ValueError(f"{what}: give either error (standard deviation) or weight "
                         "(inverse variance), not both")
    scale = _wcs_pixel_scale(wcs, np.nan)
    return _Image(index, name, shape, data, sections["error"], sections["weight"], sections["mask"],
                  wcs, unit, _image_zeropoint(zeropoint, meta, unit, scale, what))


def _array(data, what):
    array = np.asanyarray(data)
    if array.ndim != 2:
        raise ValueError(f"{what} must be a 2-D image; got data of shape {array.shape}")
    return array


def _image_hdu(hdul, what):
    for hdu in hdul:
        if hdu.is_image and hdu.header.get("NAXIS", 0) > 0:
            return hdu
    raise ValueError(f"{what} holds no image HDU")


def _fits_plane(path, what):
    """The section reader and merged header of a FITS file's first image."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: no such file {path!r}")
    try:
        with fits.open(path, memmap=True) as hdul:
            hdu = _image_hdu(hdul, f"{what} ({path!r})")
            index = hdul.index_of(hdu)
            header = fits.Header(hdul[0].header)
            header.update(hdu.header)
            if len(hdu.shape) != 2:
                raise ValueError(f"{what} ({path!r}) must be a 2-D image; HDU {index} has "
                                 f"shape {hdu.shape}")
    except OSError as err:
        raise ValueError(f"{what}: {path!r} is not a readable FITS file ({err})") from None
    return _Section(path, index, None, None), header


def _shape(section):
    if section.array is not None:
        return section.array.shape
    with fits.open(section.path, memmap=True) as hdul:
        return tuple(hdul[section.hdu].shape)


def _map_section(value, what, shape, image):
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        section, _ = _fits_plane(os.fspath(value), f"{what} of {image}")
    else:
        if isinstance(value, u.Quantity):
            raise TypeError(f"{what} of {image} is a Quantity: give it in the image's unit "
                            "as a plain array")
        section = _Section(None, None, None, np.asanyarray(value))
    if _shape(section) != tuple(shape):
        raise ValueError(f"{what} of {image} has shape {_shape(section)}; it must have the "
                         f"image's shape {tuple(shape)}")
    return section


def _restrict(section, slices):
    """``section`` limited to ``slices``: a view of an array, the slices of a file.

    A job then carries only its tile's pixels (an array) or where to read
    them (a file), never a whole in-memory image.
    """
    if section is None:
        return None
    if section.array is not None:
        return section._replace(array=section.array[slices])
    return section._replace(slices=slices)


def read_section(section):
    """The pixels of a section; only those are read from a FITS file.

    Parameters
    ----------
    section : `_Section` or None
        An in-memory array, or a FITS image and the ``(rows, columns)``
        slices to read.

    Returns
    -------
    array : `~numpy.ndarray` or None
    """
    if section is None:
        return None
    if section.array is not None:
        return np.asarray(section.array)
    # Memory-mapped where the file allows it (memmap=True would refuse scaled integers).
    with fits.open(section.path) as hdul:
        hdu = hdul[section.hdu]
        mapped = getattr(hdul.fileinfo(section.hdu)["file"], "memmap", False)
        if (mapped and not isinstance(hdu, fits.CompImageHDU)
                and not _scaled(hdu.header)):
            # A slice of the memory map reads only the section's pages, at
            # disk speed (.section reads it row by row, ~10x slower).
            return np.array(hdu.data[section.slices])
        # Decompresses (tiles, gzip) or rescales only the section, where .data
        # would do so for the whole image.
        return np.asarray(hdu.section[section.slices])


def _scaled(header):
    """Whether FITS integers are stored scaled (BSCALE, BZERO) or with BLANK values."""
    return (header.get("BSCALE", 1) != 1 or header.get("BZERO", 0) != 0
            or "BLANK" in header)


def _header_unit(header, what):
    bunit = header.get("BUNIT")
    if not bunit or not str(bunit).strip():
        return None
    bunit = CCDData.known_invalid_fits_unit_strings.get(bunit, bunit)
    try:
        return _pixel_unit(u.Unit(bunit))
    except ValueError:
        raise ValueError(f"{what}: BUNIT {bunit!r} is not a unit astropy reads; give the "
                         "image as CCDData with its unit") from None


def _header_wcs(header):
    if header is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)  # astropy's own header fixes
        wcs = WCS(header)
    return wcs if wcs.has_celestial else None


def _image_zeropoint(given, meta, unit, pixel_scale, what):
    """The AB zeropoint of the image's pixels in their unit (NaN: unknown)."""
    if given is not None:
        if not isinstance(given, Real) or isinstance(given, (bool, np.bool_)):
            raise TypeError(f"zeropoint must be a number (AB mag); got {given!r}")
        zeropoint = _zeropoint_value(given, "zeropoint")
    else:
        zeropoint = _header_zeropoint(meta, what)
    return float(_unit_zeropoint(unit, np.array([pixel_scale]), np.array([zeropoint]),
                                 what)[0])


def _header_zeropoint(meta, what):
    found = _meta_lookup(meta, ZEROPOINT_KEYS)
    if found is not None:
        key, value = found
        return _zeropoint_value(value, f"{what}'s {key}", text=True)
    flam, plam = _meta_lookup(meta, ("PHOTFLAM",)), _meta_lookup(meta, ("PHOTPLAM",))
    if flam is not None and plam is not None and flam[1] > 0 and plam[1] > 0:
        # HST's AB zeropoint of electron/s pixels (STScI's definition).
        return float(-2.5 * np.log10(flam[1]) - 5 * np.log10(plam[1]) - 2.408)
    return np.nan


def _conversion(image, estimator):
    """How the pixels of ``image`` become what ``estimator`` was fitted on."""
    unit, zeropoint = image.unit, image.zeropoint
    target_unit, target_zp = _pixel_unit(estimator.unit_), _model_zeropoint(estimator)
    scale = _wcs_pixel_scale(image.wcs, np.nan)
    what = f"image {image.name!r}"
    factor = None
    if unit is not None and target_unit is not None:
        try:
            factor = check_unit(unit, target_unit)
        except u.UnitsError:
            factor = None
        if factor is not None:
            out = _Conversion(factor, target_unit, zeropoint + 2.5 * np.log10(factor), scale)
    elif unit is None and target_unit is None and (np.isnan(zeropoint) or np.isnan(target_zp)):
        out = _Conversion(1.0, None, zeropoint, scale)
        factor = 1.0
    if factor is None:
        # Different kinds of units (or none): only zeropoints relate them.
        if np.isnan(zeropoint):
            raise ValueError(
                f"{what} has pixels in {unit or 'no unit'} and the model was fitted on "
                f"pixels in {target_unit or 'no unit'}: measure needs the image's AB "
                "zeropoint to convert them; pass zeropoint=..., or put MAGZERO (or PHOTZP, "
                "or HST's PHOTFLAM and PHOTPLAM) in the FITS header")
        if np.isnan(target_zp):
            if target_unit is not None:
                raise u.UnitsError(f"{what} has pixels in {unit or 'no unit'}, which cannot "
                                   f"be converted to {target_unit}, the model's pixel unit")
            out = _Conversion(1.0, None, zeropoint, scale)
        else:
            out = _Conversion(10 ** (0.4 * (target_zp - zeropoint)), target_unit, target_zp,
                              scale)
    if "mag" in estimator.targets_ and np.isnan(out.zeropoint) and target_unit is None:
        raise ValueError(f"{what} has no known AB zeropoint and the model measures "
                         "magnitudes: pass zeropoint=..., or put MAGZERO (or PHOTZP, or HST's "
                         "PHOTFLAM and PHOTPLAM) in the FITS header")
    return out


def _jobs(image, tiling, estimator):
    conversion = _conversion(image, estimator)
    if tiling is None:
        tiles = [whole_image(image.shape)]
    else:
        tiles = tile_grid(image.shape, *tiling)
    for tile in tiles:
        yield _Job(image.index, image.name, tile, len(tiles),
                   *(_restrict(section, tile.slices)
                     for section in (image.data, image.error, image.weight, image.mask)),
                   image.unit, conversion)


# -- one job ---------------------------------------------------------------
def run_job(job, estimator, settings):
    """Detect, cut out and measure the galaxies of one tile.

    Parameters
    ----------
    job : `_Job`
        The tile and how to read and convert it.
    estimator : estimator
        A fitted estimator whose ``predict`` returns a catalog.
    settings : `_Settings`
        Cutout size, prediction batch size and detection options.

    Returns
    -------
    result : `_Result`
        The rows of the galaxies this tile keeps (None when none), in the
        order of the tile's segmentation labels.
    """
    start = time.perf_counter()
    slices = job.tile.slices
    # No WCS: sky positions come from the image's WCS once the catalog is assembled.
    tile = NDData(read_section(job.data), unit=job.unit)
    with warnings.catch_warnings():
        # An empty tile is ordinary; measure warns once if the whole catalog is empty.
        warnings.simplefilter("ignore", NoDetectionsWarning)
        found = _extract_stack(tile, None, size=settings.size, error=read_section(job.error),
                               weight=read_section(job.weight), mask=read_section(job.mask),
                               wcs=None, **settings.detection)
    x = found.table["x"].value + slices[1].start
    y = found.table["y"].value + slices[0].start
    keep = np.flatnonzero(in_core(job.tile, x, y))
    if not len(keep):
        return _Result(None, {}, len(x), time.perf_counter() - start)
    table = QTable()
    table["x"] = x[keep] * u.pix
    table["y"] = y[keep] * u.pix
    table["area"] = found.table["area"][keep]
    catalog = _predict(estimator, found.stack, keep, job.conversion, settings.batch_size)
    for name in catalog.colnames:
        table[name] = catalog[name]
    return _Result(table, dict(catalog.meta), len(x), time.perf_counter() - start)


def _predict(estimator, stack, rows, conversion, batch_size):
    """The estimator's catalog of the cutouts ``rows`` of ``stack``, converted, in batches."""
    catalogs = []
    for lo in range(0, len(rows), batch_size):
        part = rows[lo:lo + batch_size]
        meta = {"flag": stack.flag[part]}
        if np.isfinite(conversion.zeropoint):
            meta["zeropoint"] = conversion.zeropoint
        if np.isfinite(conversion.pixel_scale):
            meta["pixel_scale"] = conversion.pixel_scale
        std = None if stack.std is None else StdDevUncertainty(stack.std[part]
                                                               * conversion.factor)
        cutouts = NDData(stack.data[part] * conversion.factor, mask=stack.mask[part],
                         unit=conversion.unit, meta=meta, uncertainty=std)
        catalogs.append(estimator.predict(cutouts))
    return vstack(catalogs, metadata_conflicts="silent")


def _log(job, result):
    rows, cols = job.tile.slices
    where = (f" tile {job.tile.index + 1}/{job.n_tiles} [y {rows.start}:{rows.stop}, "
             f"x {cols.start}:{cols.stop}]" if job.n_tiles > 1 else "")
    kept = 0 if result.table is None else len(result.table)
    log.info(f"measure: image {job.name!r}{where}: {result.n_detected} sources detected, "
             f"{kept} kept, {result.seconds:.2f} s")


# -- the catalog -----------------------------------------------------------
def _assemble(sources, jobs, results, identity, tiling, settings):
    """One catalog from the jobs' rows, in image then tile order."""
    from .. import __version__

    several = len(sources) > 1
    names = [s.name for s in sources]
    if several and not all(isinstance(name, str) for name in names):
        names = list(range(len(sources)))
    sky = all(s.wcs is not None for s in sources)
    parts, meta = [], {}
    for k, source in enumerate(sources):
        tables = []
        for job, result in zip(jobs, results):
            if job.image == k and result.table is not None:
                table = result.table
                if tiling is not None:
                    table.add_column(job.tile.index, name="tile", index=2)
                tables.append(table)
                meta = meta or result.meta
        if not tables:
            continue
        table = vstack(tables, metadata_conflicts="silent")
        table.add_column(np.arange(1, len(table) + 1), name="label", index=0)
        if sky:
            coords = source.wcs.pixel_to_world(table["x"].value, table["y"].value).icrs
            table.add_column(coords.ra.to(u.deg), name="ra", index=3)
            table.add_column(coords.dec.to(u.deg), name="dec", index=4)
            table.add_column(coords, name="sky_centroid", index=5)
        if several:
            table.add_column(np.full(len(table), names[k]), name="image", index=0)
        parts.append(table)
    if parts:
        catalog = vstack(parts, metadata_conflicts="silent")
    else:
        warnings.warn(f"no galaxy detected in {len(sources)} image(s): the catalog is empty; "
                      "lower threshold or n_pixels", NoDetectionsWarning, stacklevel=3)
        catalog = QTable({"label": np.zeros(0, np.int64), "x": np.zeros(0) * u.pix,
                          "y": np.zeros(0) * u.pix})
    catalog.meta.clear()
    catalog.meta.update(meta)
    catalog.meta.update(identity)
    catalog.meta.update({
        "astromorphnet_version": __version__,
        "images": [str(name) for name in (s.name for s in sources)],
        "zeropoints": [float(s.zeropoint) for s in sources],
        "size": list(settings.size),
        "detection": dict(settings.detection),
    })
    if tiling is not None:
        catalog.meta.update(tile_size=list(tiling[0]), tile_overlap=tiling[1])
    return catalog

"""The classical labeller: PSF-convolved single-Sérsic least-squares fits.

GALFIT's role in the pipeline: label real galaxies for transfer learning,
and give the CNN estimators a speed and accuracy baseline.  The forward
model is the simulation's renderer (`~astromorphnet.simulation.render_sersic`),
so fits and simulated truth share their conventions exactly.
"""

import enum

import astropy.units as u
import numpy as np
from astropy.utils.console import ProgressBar
from threadpoolctl import threadpool_limits

from .._input import as_stamps
from ..catalog._targets import TARGET_UNITS, TARGETS, make_catalog, require_zeropoint
from .._parallel import effective_n_jobs, ordered_map, with_progress
from . import _model
from ._model import CHI2_SIGNIFICANCE, MAX_RESIDUAL_POWER, MIN_FLUX_FRACTION, MIN_SN
from ._setup import (check_psf, initial_values, kernels_for, limits_for, native_shape,
                     read_cutouts)

__all__ = ["CHI2_SIGNIFICANCE", "MAX_RESIDUAL_POWER", "MIN_FLUX_FRACTION", "MIN_SN", "FitFlag",
           "fit_sersic"]

#: Cutouts fitted per task sent to a worker process.
_TASK_SIZE = 4


class FitFlag(enum.IntFlag):
    """Bit flags of the ``fit_flag`` column of `fit_sersic` catalogs.

    A flag of 0 means the fit converged inside its bounds, detected the
    galaxy, matched the data within their noise and kept most of the
    model's light on the cutout.  Flags combine bitwise, e.g.
    ``fit_flag & FitFlag.AT_BOUND`` tests one condition.

    Attributes
    ----------
    NOT_CONVERGED : int
        The optimiser stopped at its evaluation limit before converging, or,
        even after a restart, short of the minimum: a Gauss-Newton step
        would still lower χ² by more than ``MAX_DISTANCE_TO_MINIMUM`` (a
        hundredth) of χ²_ν.  The ``*_err`` columns are NaN.
    AT_BOUND : int
        A parameter ended on one of its bounds (``r_eff``, ``sersic_n``,
        ``ellipticity``, or the centre's offset): the value is a limit, not
        a measurement, and the ``*_err`` columns are NaN.
    BAD_DATA : int
        Nothing to fit: too few unmasked pixels (e.g. an all-masked or
        all-NaN cutout) or all of them equal (a blank or constant cutout).
        The parameters are NaN.
    LOW_SN : int
        No detection: the fitted model's matched-filter signal-to-noise
        ratio (the ``sn`` column: the square root of the sum of
        (model / σ)² over the unmasked pixels, the significance of the flux
        measured with the profile as weights) is below `MIN_SN` (5).  Pure noise, a sky
        residual or a negative (sign-flipped) source: the parameters
        describe noise.
    BAD_CHI2 : int
        The model misses a significant and substantial part of the data:
        ``chi2_nu`` is above the `CHI2_SIGNIFICANCE` (5) σ quantile of χ²_ν
        for a correct model and noise, given the number of pixels (and,
        without an uncertainty, the pixels of the noise estimate), and the
        residuals' power beyond the noise, ``(chi2_nu - 1) * dof / sn**2``,
        exceeds `MAX_RESIDUAL_POWER` (a tenth) of the model's.  E.g. an
        unmasked neighbour, a sign-flipped source, or a faint galaxy with an
        uncertainty map too small; not the knots or arms of a bright galaxy,
        significant but small beside its light.
    EXTRAPOLATED : int
        Less than `MIN_FLUX_FRACTION` (half) of the fitted model's light
        falls on the cutout: its half-light isophote lies beyond the data,
        so ``r_eff`` and ``mag`` are extrapolations of the profile (e.g. a
        flat, sky-dominated cutout, or a galaxy too large for its stamp).

    Examples
    --------
    >>> from astromorphnet.fitting import FitFlag
    >>> flag = FitFlag.NOT_CONVERGED | FitFlag.AT_BOUND
    >>> int(flag)
    3
    >>> bool(flag & FitFlag.BAD_DATA)
    False
    """

    NOT_CONVERGED = _model.NOT_CONVERGED
    AT_BOUND = _model.AT_BOUND
    BAD_DATA = _model.BAD_DATA
    LOW_SN = _model.LOW_SN
    BAD_CHI2 = _model.BAD_CHI2
    EXTRAPOLATED = _model.EXTRAPOLATED


def fit_sersic(X, psf, *, pixel_scale=None, zeropoint=None, fit_sky=False, initial=None,
               bounds=None, n_jobs=1, verbose=0):
    """Fit a PSF-convolved single-Sérsic profile to each cutout.

    Weighted least squares (`scipy.optimize.least_squares`, bounded
    trust-region reflective) of the cutout against the simulations' renderer
    (`~astromorphnet.simulation.render_sersic`: sub-pixel integrated, PSF
    convolved), over the unmasked pixels only: user masks, NaN/inf pixels
    and pixels of non-finite or zero uncertainty are ignored.  Residuals are
    weighted by 1/σ of the cutout's uncertainty; without one (or with one
    finite nowhere), uniformly, and ``chi2_nu`` and ``sn`` are measured
    against a robust noise estimate (the smaller of the 3σ-clipped MADs of
    the pixels far from the galaxy and of the fit's residuals; standard
    deviations for quantised pixels, e.g. counts).  The galaxy is assumed
    near the cutout centre, with neighbours masked.  Starting values come
    from ``initial`` or from the image moments (flux sum, second moments for
    the axis ratio and angle, curve of growth for ``r_eff``; ``n = 2``).  A
    64×64 cutout takes some 0.3 s (about 60 renders of the model) on one
    core, several hundred times a CNN's inference
    (``benchmarks/bench_fitting.py``).

    Conventions are the simulations': ``r_eff`` is the half-light radius
    along the semi-major axis (GALFIT's), ``ellipticity = 1 - b/a``, ``pa``
    counter-clockwise from +x, and ``mag`` the total (untruncated) AB
    magnitude.

    Parameters
    ----------
    X : cutouts
        A list of 2-D `~astropy.nddata.NDData`/`~astropy.nddata.CCDData`
        (with optional mask, uncertainty, unit, WCS), one 3-D
        `~astropy.nddata.NDData`, or an array ``(n, ny, nx)``.
    psf : `galsim.GSObject`, `~numpy.ndarray` or `~astromorphnet.simulation.SurveyConfig`
        The PSF (without the pixel response, which the model adds): a
        GalSim profile (needs the pixel scale), a 2-D image sampled at the
        cutouts' pixel scale (normalised here; drawn through
        `galsim.InterpolatedImage` as `~astromorphnet.simulation.SurveyConfig`
        does, so the pixel is applied once more: an empirical PSF from stars
        slightly broadens the model), or a survey configuration, whose single
        PSF, pixel scale and zeropoint serve as defaults.
    pixel_scale : float or `~astropy.units.Quantity`, optional
        Arcsec per pixel of cutouts without a celestial WCS.
    zeropoint : float, optional
        AB zeropoint of cutouts whose meta/unit give none.
    fit_sky : bool, optional
        Also fit a constant background (adds a ``sky`` column).
    initial : `~astropy.table.Table` or array-like, optional
        Starting values, one row per cutout: a table with any of the
        columns ``mag``, ``r_eff``, ``sersic_n``, ``ellipticity``, ``pa``
        [deg], ``x_offset``/``dx`` and ``y_offset``/``dy`` [pix] (e.g. a CNN
        catalog or a truth table), or an array ``(n, 4)`` of ``mag``,
        ``r_eff`` [pix], ``sersic_n``, ``ellipticity``.  Missing columns and
        NaN values start from the moments.
    bounds : dict, optional
        ``{name: (low, high)}`` for ``r_eff`` [pix], ``sersic_n``,
        ``ellipticity``, ``x_offset`` and ``y_offset`` [pix]; the three in
        pixels may be angles (a `~astropy.units.Quantity`, converted with
        each cutout's pixel scale).  Defaults:
        ``r_eff`` 0.1 pixel to 4 times the cutout size, ``sersic_n``
        0.3–6.2 (the widest allowed), ``ellipticity`` 0–0.95 and the
        centre within a quarter of the cutout size of its centre.
    n_jobs : int, optional
        Worker processes; negative values count back from the number of
        cores, as in joblib (``-1``: all cores, ``-2``: all but one).
        Results do not depend on it.
    verbose : int, optional
        Show a progress bar.

    Returns
    -------
    catalog : `~astropy.table.QTable`
        One row per cutout with the columns of the CNN estimators'
        ``predict`` (``mag`` [ABmag], ``r_eff`` [pix], ``r_eff_arcsec``
        where the pixel scale is known, ``sersic_n``, ``ellipticity``,
        ``flag`` with the cutouts' `~astromorphnet.catalog.SersicFlag`
        bits), then their 1σ errors ``mag_err`` [mag, a magnitude
        difference], ``r_eff_err`` [pix], ``sersic_n_err`` and
        ``ellipticity_err``, then ``pa`` [deg], ``pa_err`` [deg],
        ``x_offset``, ``x_offset_err``, ``y_offset`` and ``y_offset_err``
        [pix] (centre offset from the cutout centre), ``sky`` (when fitted,
        in the pixels' unit), ``sn`` (the model's matched-filter
        signal-to-noise ratio), ``chi2_nu`` (reduced χ²) and ``fit_flag``
        (`FitFlag` bits: keep ``fit_flag == 0`` for labels).  Rows flagged
        ``BAD_DATA`` hold NaN.  The errors are the least-squares
        covariance's, as GALFIT reports them: ``inv(J^T J)`` of the
        residuals weighted by 1/σ (the uncertainty map, or the estimated
        noise), times ``chi2_nu`` when it exceeds 1, propagated to each
        column to first order.  They are statistical: they hold for a
        single-Sérsic galaxy and a correct noise (68 % coverage within
        ±5 % on simulations), not for model mismatch or an unmasked
        neighbour.  An error is NaN where the covariance is undefined: a
        fit flagged ``NOT_CONVERGED``, ``AT_BOUND`` or ``BAD_DATA``, a
        degenerate fit (a combination of parameters the data do not
        constrain), and ``r_eff``, ``ellipticity`` and ``pa`` of an exactly
        round model.

    Raises
    ------
    TypeError
        If ``psf`` is of an unsupported type or a PSF image does not hold
        real numbers, ``initial`` is neither a table nor numeric, ``bounds``
        is not a dict, or ``fit_sky`` is not a bool.
    ValueError
        If ``X`` is empty or malformed, the PSF image is not a normalisable
        2-D array, a GalSim PSF comes without the cutouts' pixel scale or
        its FWHM spans under a tenth of a pixel or more than the cutout
        (a pixel scale in the wrong unit),
        ``mag`` cannot be computed for lack of a zeropoint, ``initial``
        or ``bounds`` are malformed, bounds are angles for cutouts without
        a pixel scale, or ``n_jobs`` is 0.

    Warns
    -----
    astropy.utils.exceptions.AstropyUserWarning
        If a PSF image's centroid lies more than a pixel from its centre.

    Examples
    --------
    >>> from astromorphnet.fitting import fit_sersic
    >>> from astromorphnet.simulation import SurveyConfig, simulate_galaxies
    >>> survey = SurveyConfig.from_preset("CANDELS_F160W", stamp_size=32)
    >>> ranges = {"mag": (20, 20), "r_eff": (3, 3), "sersic_n": (1, 1)}
    >>> images, truth = simulate_galaxies(1, survey, ranges=ranges, random_state=0)
    >>> catalog = fit_sersic(images, survey)
    >>> catalog.colnames[6:10]
    ['mag_err', 'r_eff_err', 'sersic_n_err', 'ellipticity_err']
    >>> bool(abs(catalog["mag"][0].value - truth["mag"][0].value) < 0.05)
    True
    >>> catalog["mag_err"].unit, catalog["r_eff_err"].unit
    (Unit("mag"), Unit("pix"))
    """
    psf_object, is_image, survey, psf_description = check_psf(psf)
    if survey is not None:
        pixel_scale = survey.pixel_scale if pixel_scale is None else pixel_scale
        zeropoint = survey.zeropoint if zeropoint is None else zeropoint
    stamps = as_stamps(X, pixel_scale=pixel_scale, zeropoint=zeropoint)
    require_zeropoint(stamps.zeropoint)
    n = len(stamps)
    shapes = [native_shape(stamps, i) for i in range(n)]
    kernels, keys = kernels_for(psf_object, is_image, stamps.pixel_scale, shapes)
    starts = initial_values(initial, stamps)
    limits = limits_for(bounds, shapes, stamps.pixel_scale)
    if not isinstance(fit_sky, (bool, np.bool_)):  # "no" would be truthy
        raise TypeError(f"fit_sky must be True or False; got {fit_sky!r}")
    fit_sky = bool(fit_sky)
    n_jobs = effective_n_jobs(n_jobs)
    # Small sets are split evenly between the workers.
    size = max(1, min(_TASK_SIZE, -(-n // max(n_jobs, 1))))

    def tasks():
        for start in range(0, n, size):
            stop = min(start + size, n)
            cutouts = read_cutouts(stamps, start, stop)
            galaxies = [(*cutout, keys[i], stamps.zeropoint[i], limits[i], starts[i])
                        for i, cutout in zip(range(start, stop), cutouts)]
            used = {keys[i] for i in range(start, stop)}
            yield start, galaxies, {key: kernels[key] for key in used}, fit_sky

    rows = np.empty((n, len(_model.RESULT_COLUMNS) + 1))
    n_tasks = -(-n // size)
    bar = ProgressBar(n_tasks) if verbose else None
    for start, block in with_progress(_run(tasks(), n_jobs if n_tasks > 1 else 1), bar, 0):
        rows[start:start + len(block)] = block
    return _catalog(rows, stamps, fit_sky, psf_description)


def _run(tasks, n_jobs):
    """Yield ``(start, rows)`` of the tasks, in order, in worker processes."""
    yield from ordered_map(_fit_task, tasks, n_jobs)


def _fit_task(task):
    start, galaxies, kernels, fit_sky = task
    rows = []
    # One BLAS thread: the optimiser's small SVDs gain nothing from more, and
    # OpenBLAS's idle threads spinning between them slow the renders ~2x.
    with threadpool_limits(limits=1, user_api="blas"):
        for data, mask, std, flag, key, zeropoint, limits, initial in galaxies:
            kernel, psf_hlr = kernels[key]
            rows.append(_model.fit_one(data, mask, std, kernel, psf_hlr, limits, fit_sky,
                                       zeropoint, initial) + [flag])
    return start, np.array(rows)


def _catalog(rows, stamps, fit_sky, psf_description):
    columns = dict(zip(_model.RESULT_COLUMNS + ("flag",), rows.T))
    catalog = make_catalog(np.column_stack([columns[name] for name in TARGETS]), TARGETS,
                           flag=columns["flag"].astype(np.int64),
                           pixel_scale=stamps.pixel_scale,
                           meta={"estimator": "fit_sersic",
                                 "model": "PSF-convolved single Sérsic, least squares",
                                 "psf": psf_description, "fit_sky": fit_sky})
    # A magnitude error is a difference of magnitudes, not an AB magnitude.
    error_units = {**TARGET_UNITS, "mag": u.mag}
    for name in TARGETS:
        catalog[f"{name}_err"] = columns[f"{name}_err"] * error_units[name]
        catalog[f"{name}_err"].info.format = ".3g"
    for name, unit, fmt in (("pa", u.deg, ".1f"), ("x_offset", u.pix, ".3f"),
                            ("y_offset", u.pix, ".3f")):
        catalog[name] = columns[name] * unit
        catalog[name].info.format = fmt
        catalog[f"{name}_err"] = columns[f"{name}_err"] * unit
        catalog[f"{name}_err"].info.format = ".3g"
    if fit_sky:
        catalog["sky"] = columns["sky"] if stamps.unit is None else columns["sky"] * stamps.unit
    catalog["sn"] = columns["sn"]
    catalog["sn"].info.format = ".1f"
    catalog["chi2_nu"] = columns["chi2_nu"]
    catalog["chi2_nu"].info.format = ".3f"
    catalog["fit_flag"] = columns["fit_flag"].astype(np.int32)
    return catalog

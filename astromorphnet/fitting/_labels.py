"""Fine-tuning labels from Sérsic fits: `fit_sersic` and its quality cuts in one call.

The real-data workflow of transfer learning: real cutouts have no truth, so
a classical fit labels them, and only the fits that can be trusted may
teach the network.  `label_with_fit` returns one row per cutout, NaN where
the fit fails the cuts, which `~astromorphnet.TransferLearningRegressor`
skips, so labelling and fine-tuning chain without index bookkeeping.
"""

import warnings
from numbers import Real

import numpy as np
from astropy.utils.exceptions import AstropyUserWarning

from ._sersic_fit import FitFlag, fit_sersic

__all__ = ["MAX_REJECTED_FRACTION", "MIN_LABELS", "label_with_fit"]

#: Fewer fits passing the cuts than this makes `label_with_fit` warn: a
#: network fine-tuned on a few dozen galaxies follows their noise.
MIN_LABELS = 50
#: A larger share of fits failing the cuts makes `label_with_fit` warn: most
#: cutouts do not match the PSF, the stamp size or the masks given, and the
#: survivors are a biased sample (bright, compact galaxies).
MAX_REJECTED_FRACTION = 0.5

#: Columns that describe the fit rather than the galaxy: kept for rejected rows.
_DIAGNOSTICS = ("flag", "sn", "chi2_nu", "fit_flag")
#: ln(10)/2.5: a magnitude error times this is the flux's relative error.
_MAG_TO_RELATIVE = 0.4 * np.log(10)


def label_with_fit(X, psf, *, max_chi2=None, max_rel_error=None, fit_sky=False,
                   pixel_scale=None, zeropoint=None, n_jobs=1, verbose=False):
    """Label cutouts with quality-cut Sérsic fits, ready to fine-tune on.

    Fits every cutout with `fit_sersic` and keeps the fits that pass the
    cuts: ``fit_flag == 0`` (converged inside the bounds, detected, matched
    by the model, not extrapolated: see `FitFlag`), ``flag == 0`` (the
    cutout's own `~astromorphnet.catalog.SersicFlag` bits),
    ``chi2_nu <= max_chi2`` and each relative error at most
    ``max_rel_error`` when those are given.  Every cutout keeps its row, so
    the table lines up with ``X``: rows that fail have NaN parameters and
    errors, which `~astromorphnet.TransferLearningRegressor` skips, so the
    real-data workflow is one call::

        TransferLearningRegressor(pretrained).fit(cutouts, label_with_fit(cutouts, psf))

    Parameters
    ----------
    X : cutouts
        Any form `fit_sersic` takes: a list of 2-D
        `~astropy.nddata.NDData`/`~astropy.nddata.CCDData`, one 3-D
        `~astropy.nddata.NDData`, or an array ``(n, ny, nx)``.
    psf : `galsim.GSObject`, `~numpy.ndarray` or `~astromorphnet.simulation.SurveyConfig`
        The cutouts' PSF, as for `fit_sersic` (a survey configuration also
        gives the pixel scale and zeropoint).
    max_chi2 : float, optional
        Also reject fits whose reduced χ² exceeds this (default: only the
        fit's own ``BAD_CHI2`` flag, which adapts to the number of pixels).
    max_rel_error : float, optional
        Also reject fits whose relative 1σ error on the flux
        (``0.4 ln(10) mag_err``), ``r_eff``, ``sersic_n`` or the axis ratio
        ``b/a = 1 - ellipticity`` exceeds this (e.g. 0.2), or is NaN (an
        undefined covariance: a degenerate fit).  The axis ratio rather than
        the ellipticity, whose relative error diverges for round galaxies.
    fit_sky : bool, optional
        Also fit a constant background (adds a ``sky`` column).
    pixel_scale : float or `~astropy.units.Quantity`, optional
        Arcsec per pixel of cutouts without a celestial WCS (as for
        `fit_sersic`).
    zeropoint : float, optional
        AB zeropoint of cutouts whose meta/unit give none.
    n_jobs : int, optional
        Worker processes of the fits (negative: as in joblib).
    verbose : bool, optional
        Show a progress bar.

    Returns
    -------
    labels : `~astropy.table.QTable`
        `fit_sersic`'s catalog, one row per cutout, plus ``selected``
        (bool, whether the fit passed the cuts).  In rows not selected every
        fitted value (``mag``, ``r_eff``, ``r_eff_arcsec``, ``sersic_n``,
        ``ellipticity``, ``pa``, the offsets, ``sky`` and all ``*_err``) is
        NaN, units kept; the diagnostics ``flag``, ``sn``, ``chi2_nu`` and
        ``fit_flag`` stay, to say why.  ``meta`` adds ``selection`` (the
        cuts, as text), ``max_chi2`` and ``max_rel_error`` (when given),
        ``n_fitted`` and ``n_selected``.

    Raises
    ------
    TypeError
        If ``max_chi2`` or ``max_rel_error`` is not a number (or None), or
        as `fit_sersic` for the other arguments.
    ValueError
        If ``max_chi2`` or ``max_rel_error`` is not positive and finite, or
        as `fit_sersic`.

    Warns
    -----
    astropy.utils.exceptions.AstropyUserWarning
        If fewer than `MIN_LABELS` (50) fits pass the cuts, or more than
        `MAX_REJECTED_FRACTION` (half) of them fail; the message counts the
        reasons.  Also `fit_sersic`'s warnings.

    See Also
    --------
    fit_sersic : the fits alone, without cuts.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from astromorphnet.fitting import label_with_fit
    >>> from astromorphnet.simulation import SurveyConfig, simulate_galaxies
    >>> survey = SurveyConfig.from_preset("CANDELS_F160W", stamp_size=32)
    >>> ranges = {"mag": (20, 21), "r_eff": (2, 4), "sersic_n": (1, 2)}
    >>> images, truth = simulate_galaxies(2, survey, ranges=ranges, random_state=0)
    >>> images[1] = 0.0  # a blank cutout: nothing to fit
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # fewer than MIN_LABELS labels
    ...     labels = label_with_fit(images, survey)
    >>> labels["selected"].tolist(), labels.meta["n_selected"]
    ([True, False], 1)
    >>> bool(np.isnan(labels["mag"][1].value)), labels["mag"].unit
    (True, Unit("mag(AB)"))
    """
    for name, value in (("max_chi2", max_chi2), ("max_rel_error", max_rel_error)):
        _check_cut(name, value)
    fitted = fit_sersic(X, psf, pixel_scale=pixel_scale, zeropoint=zeropoint, fit_sky=fit_sky,
                        n_jobs=n_jobs, verbose=verbose)
    return _apply_cuts(fitted, max_chi2, max_rel_error)


def _apply_cuts(fitted, max_chi2, max_rel_error):
    """Add ``selected`` to ``fitted``, blank its rejected rows, record and judge the cuts."""
    selected, reasons = _select(fitted, max_chi2, max_rel_error)
    rejected = ~selected
    for name in fitted.colnames:
        if name not in _DIAGNOSTICS and fitted[name].dtype.kind == "f":
            fitted[name][rejected] = np.nan
    fitted["selected"] = selected
    cuts = "fit_flag == 0 and flag == 0"
    if max_chi2 is not None:
        cuts += f" and chi2_nu <= {max_chi2}"
    if max_rel_error is not None:
        cuts += f" and relative errors <= {max_rel_error}"
    n, n_selected = len(fitted), int(selected.sum())
    # Only the cuts given: a FITS header cannot hold None.
    fitted.meta.update({name: value for name, value in (("max_chi2", max_chi2),
                                                        ("max_rel_error", max_rel_error))
                        if value is not None})
    fitted.meta.update(selection=cuts, n_fitted=n, n_selected=n_selected)
    if n_selected < MIN_LABELS or n - n_selected > MAX_REJECTED_FRACTION * n:
        counted = ", ".join(f"{reason} {count}" for reason, count in
                            sorted(reasons.items(), key=lambda item: -item[1]) if count)
        warnings.warn(
            f"{n_selected} of {n} fits pass the cuts ({cuts})"
            + (f"; with fewer than {MIN_LABELS} labels, fine-tuning learns their noise"
               if n_selected < MIN_LABELS else "")
            + (f"; rejected (a fit may fail several cuts): {counted}.  Check the PSF, the "
               "masks of neighbours and that the galaxies fit their stamps" if counted else ""),
            AstropyUserWarning, stacklevel=3)
    return fitted


def _check_cut(name, value):
    if value is None:
        return
    if not isinstance(value, Real) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a positive number or None; got "
                        f"{type(value).__name__} {value!r}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive, finite number or None; got {value!r}")


def _select(fitted, max_chi2, max_rel_error):
    """Whether each fit passes the cuts, and how many fail each one."""
    fit_flag = np.asarray(fitted["fit_flag"])
    failed = {flag.name: (fit_flag & flag) != 0 for flag in FitFlag}
    failed["cutout flag"] = np.asarray(fitted["flag"]) != 0
    with np.errstate(invalid="ignore"):
        if max_chi2 is not None:
            failed[f"chi2_nu > {max_chi2}"] = ~(np.asarray(fitted["chi2_nu"]) <= max_chi2)
        if max_rel_error is not None:
            failed[f"relative error > {max_rel_error}"] = ~(
                _relative_errors(fitted) <= max_rel_error).all(axis=1)
    selected = (fit_flag == 0) & ~np.any(list(failed.values()), axis=0)
    return selected, {reason: int(rows.sum()) for reason, rows in failed.items()}


def _relative_errors(fitted):
    """``(n, 4)`` relative errors of flux, ``r_eff``, ``sersic_n`` and ``b/a``."""
    def value(name):
        return np.asarray(getattr(fitted[name], "value", fitted[name]), float)

    return np.column_stack([
        _MAG_TO_RELATIVE * value("mag_err"),
        value("r_eff_err") / value("r_eff"),
        value("sersic_n_err") / value("sersic_n"),
        value("ellipticity_err") / (1.0 - value("ellipticity")),
    ])

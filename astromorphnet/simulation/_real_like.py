"""Built-in stand-ins for real survey galaxies, for demos, tests and benchmarks."""

import copy

import astropy.units as u
import numpy as np

from ._simulate import Realism, _as_survey, simulate_galaxies
from ._survey import _psf_fwhm

__all__ = ["REAL_LIKE_RANGES", "REAL_LIKE_REALISM", "TARGET_DOMAINS", "simulate_real_like",
           "simulate_target"]

#: Label distribution of the real-like set: the reference thesis's real
#: CANDELS galaxies (its Table 3.1), with sizes log-uniform (real galaxies
#: are mostly small) where the training simulations draw them uniformly.
REAL_LIKE_RANGES = {"mag": (16.0, 25.0), "r_eff": (1.5, 31.6, "log"), "sersic_n": (0.3, 6.2),
                    "ellipticity": (0.1, 0.9)}

#: What real cutouts have and single-Sérsic training simulations lack.
REAL_LIKE_REALISM = Realism(knot_fraction=(0.0, 0.3), n_knots=10, neighbours=0.8,
                            sky_gradient=1.5, cosmic_rays=0.2)

#: Target domains of `simulate_target`: survey preset, label ranges and
#: realism of each.  Their nuisances differ on purpose from what
#: `simulate_randomised` draws by default (see `simulate_target`).
TARGET_DOMAINS = {
    "hst_hard": {
        "survey": "CANDELS_F160W_HARD",
        "ranges": REAL_LIKE_RANGES,
        "realism": Realism(knot_fraction=(0.05, 0.4), n_knots=15, neighbours=1.5,
                           sky_gradient=3.0, cosmic_rays=0.3)},
    "ground": {
        "survey": "GROUND_DEEP",
        # Sizes in 0.2" pixels: 0.2-2.4" half-light radii, mostly small.
        "ranges": {"mag": (17.0, 24.0), "r_eff": (1.0, 12.0, "log"), "sersic_n": (0.3, 6.2),
                   "ellipticity": (0.0, 0.8)},
        "realism": Realism(knot_fraction=(0.0, 0.15), n_knots=10, neighbours=1.2,
                           sky_gradient=1.0)},
}


def _simulate_stand_in(n, survey, default_ranges, realism, *, truth, ranges, stamp_size,
                       n_jobs, random_state, verbose):
    """`simulate_galaxies` with a stand-in's ranges and realism, labelled as a stand-in."""
    images, truth = simulate_galaxies(
        n, survey, truth=truth,
        ranges=ranges if truth is not None else {**default_ranges, **(ranges or {})},
        realism=realism, stamp_size=stamp_size, n_jobs=n_jobs, random_state=random_state,
        verbose=verbose)
    truth.meta["stand_in_for_real_data"] = True
    return images, truth


def simulate_real_like(n=None, *, truth=None, ranges=None, stamp_size=None, n_jobs=1,
                       random_state=None, verbose=False):
    """Simulate a **stand-in for real** HST/CANDELS F160W cutouts, with exact labels.

    Real galaxies differ from the training simulations (`simulate_galaxies`
    on the ``"CANDELS_F160W"`` preset) in ways the simulations do not model:
    here the PSF varies from galaxy to galaxy around the training model
    (``"CANDELS_F160W_REAL_LIKE"`` preset), the noise is
    correlated (HST's drizzled noise, from GalSim's COSMOS correlation
    function) and 1.5× stronger, galaxies carry star-forming knots, have
    neighbours, sit on residual sky gradients and catch cosmic rays, and
    their parameters follow the reference thesis's real-galaxy distribution
    (`REAL_LIKE_RANGES`).  The labels are the main galaxy's exact
    single-Sérsic parameters, which real data never give: use this set to
    develop and test domain adaptation, not to quote results on real data.

    Parameters
    ----------
    n : int, optional
        Number of galaxies (when ``truth`` is not given).
    truth : `~astropy.table.QTable`, optional
        Parameters to draw instead of random ones.
    ranges : dict, optional
        Overrides of `REAL_LIKE_RANGES`.
    stamp_size : int, optional
        Cutout size (default 128, the preset's).
    n_jobs : int, optional
        Worker processes (-1: all cores).
    random_state : int or None, optional
        Seed.
    verbose : bool, optional
        Show a progress bar.

    Returns
    -------
    images : `~numpy.ndarray`
        ``(n, stamp_size, stamp_size)`` float32.
    truth : `~astropy.table.QTable`
        Labels; ``meta["stand_in_for_real_data"]`` is True.

    Raises
    ------
    ValueError
        On out-of-range parameters or neither ``n`` nor ``truth`` (as for
        `simulate_galaxies`).

    See Also
    --------
    simulate_target : Harder and ground-based stand-ins.

    Examples
    --------
    >>> from astromorphnet.simulation import simulate_real_like
    >>> images, truth = simulate_real_like(4, stamp_size=32, random_state=0)
    >>> images.shape, truth.meta["stand_in_for_real_data"]
    ((4, 32, 32), True)
    """
    return _simulate_stand_in(n, "CANDELS_F160W_REAL_LIKE", REAL_LIKE_RANGES, REAL_LIKE_REALISM,
                              truth=truth, ranges=ranges, stamp_size=stamp_size, n_jobs=n_jobs,
                              random_state=random_state, verbose=verbose)


def simulate_target(n=None, domain="hst_hard", *, truth=None, ranges=None, stamp_size=None,
                    n_jobs=1, random_state=None, verbose=False):
    """Simulate a realistic **target domain**: a stand-in for real cutouts, with exact labels.

    Two domains, for benchmarks of domain adaptation (`TARGET_DOMAINS`):

    ``"hst_hard"``
        HST-like (``"CANDELS_F160W_HARD"`` preset: 0.06" pixels), harder
        and more varied than `simulate_real_like`: each galaxy gets one of
        16 aberrated optical PSFs (obscured pupil with four struts, random
        defocus, astigmatism, coma, trefoil and spherical aberration,
        convolved with 0.06–0.18" jitter; FWHM 0.16–0.40"), COSMOS-correlated
        noise twice the CANDELS preset's, more and brighter knots (5–40 %
        of the light in 15 knots), 1.5 neighbours per stamp, residual sky
        gradients up to 3σ and 0.3 cosmic rays per stamp; labels as
        `REAL_LIKE_RANGES`.
    ``"ground"``
        A deep ground-based survey (``"GROUND_DEEP"`` preset, HSC/LSST-like
        i band): 0.2" pixels, zeropoint 27, Moffat seeing of FWHM 0.6–1.2"
        (13 PSFs, β 2.5–4.5, ellipticity up to 0.06), sky-limited CCD noise
        (Poisson noise of sky and source, σ ≈ 0.08 per pixel), 64-pixel
        stamps, 1.2 neighbours per stamp (blends), faint knots, sky
        gradients up to 1σ; ``r_eff`` 1–12 pixels log-uniform, ``mag``
        17–24.

    Both differ on purpose from what `simulate_randomised` draws by
    default, so that a benchmark measures generalisation, not recall of the
    training distribution: the optical PSFs are asymmetric (coma, trefoil,
    strut spikes) where the randomised ones are symmetric profiles sheared;
    the ground noise includes the source's Poisson noise where the
    randomised noise is a background; the realism (knots, neighbours,
    gradients, cosmic rays) is stronger and the label distribution differs
    (sizes log-uniform).  The labels are the main galaxy's exact
    single-Sérsic parameters (``mag`` the total, knots included).

    Parameters
    ----------
    n : int, optional
        Number of galaxies (when ``truth`` is not given).
    domain : str, optional
        A key of `TARGET_DOMAINS`: ``"hst_hard"`` or ``"ground"``.
    truth : `~astropy.table.QTable`, optional
        Parameters to draw instead of random ones.
    ranges : dict, optional
        Overrides of the domain's label ranges.
    stamp_size : int, optional
        Cutout size (default: the preset's, 128 or 64).
    n_jobs : int, optional
        Worker processes (-1: all cores); the images do not depend on it.
    random_state : int or None, optional
        Seed.
    verbose : bool, optional
        Show a progress bar.

    Returns
    -------
    images : `~numpy.ndarray`
        ``(n, stamp_size, stamp_size)`` float32.
    truth : `~astropy.table.QTable`
        Labels and realism columns as `simulate_galaxies`, ``psf_index``
        and ``psf_fwhm`` [arcsec] of each galaxy's PSF;
        ``meta["target_domain"]`` names the domain and
        ``meta["stand_in_for_real_data"]`` is True.

    Raises
    ------
    ValueError
        If ``domain`` is unknown, or as `simulate_galaxies` (out-of-range
        parameters, neither ``n`` nor ``truth``, ...).

    Examples
    --------
    >>> from astromorphnet.simulation import simulate_target
    >>> images, truth = simulate_target(2, "ground", stamp_size=32, random_state=0)
    >>> images.shape, truth.meta["pixel_scale"], truth.meta["target_domain"]
    ((2, 32, 32), 0.2, 'ground')
    """
    if not isinstance(domain, str) or domain not in TARGET_DOMAINS:
        raise ValueError(f"unknown target domain {domain!r}; choose among "
                         f"{sorted(TARGET_DOMAINS)}")
    settings = copy.deepcopy(TARGET_DOMAINS[domain])
    survey = _as_survey(settings["survey"], stamp_size)
    images, truth = _simulate_stand_in(n, survey, settings["ranges"], settings["realism"],
                                       truth=truth, ranges=ranges, stamp_size=None,
                                       n_jobs=n_jobs, random_state=random_state,
                                       verbose=verbose)
    fwhm = [_psf_fwhm(psf, survey.pixel_scale) for psf in survey.psf_objects()]
    truth["psf_fwhm"] = np.take(fwhm, truth["psf_index"]) * u.arcsec
    truth.meta["target_domain"] = domain
    return images, truth

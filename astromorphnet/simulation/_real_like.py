"""A built-in stand-in for real survey galaxies, for demos and tests without real data."""

from ._simulate import Realism, simulate_galaxies

__all__ = ["REAL_LIKE_RANGES", "REAL_LIKE_REALISM", "simulate_real_like"]

#: Label distribution of the real-like set: the reference thesis's real
#: CANDELS galaxies (its Table 3.1), with sizes log-uniform (real galaxies
#: are mostly small) where the training simulations draw them uniformly.
REAL_LIKE_RANGES = {"mag": (16.0, 25.0), "r_eff": (1.5, 31.6, "log"), "sersic_n": (0.3, 6.2),
                    "ellipticity": (0.1, 0.9)}

#: What real cutouts have and single-Sérsic training simulations lack.
REAL_LIKE_REALISM = Realism(knot_fraction=(0.0, 0.3), n_knots=10, neighbours=0.8,
                            sky_gradient=1.5, cosmic_rays=0.2)


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

    Examples
    --------
    >>> from astromorphnet.simulation import simulate_real_like
    >>> images, truth = simulate_real_like(4, stamp_size=32, random_state=0)
    >>> images.shape, truth.meta["stand_in_for_real_data"]
    ((4, 32, 32), True)
    """
    images, truth = simulate_galaxies(
        n, "CANDELS_F160W_REAL_LIKE", truth=truth,
        ranges=ranges if truth is not None else {**REAL_LIKE_RANGES, **(ranges or {})},
        realism=REAL_LIKE_REALISM, stamp_size=stamp_size, n_jobs=n_jobs,
        random_state=random_state, verbose=verbose)
    truth.meta["stand_in_for_real_data"] = True
    return images, truth

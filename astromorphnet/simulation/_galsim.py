"""Simulated single-Sérsic galaxies drawn with GalSim.

GalSim is imported inside the functions, so importing this module is cheap.
"""

import astropy.units as u
import numpy as np
from astropy.table import QTable
from astropy.utils.console import ProgressBar
from sklearn.utils import check_random_state

__all__ = ["THESIS_RANGES", "draw_parameters", "simulate_galaxies"]

#: Parameter ranges of the reference thesis's simulations (its Table 3.2),
#: for HST/CANDELS F160W 128×128 stamps at 0.06"/pixel.
THESIS_RANGES = {
    "mag": (16.0, 27.0),
    "r_eff": (1.3, 50.2),
    "sersic_n": (0.3, 6.2),
    "ellipticity": (0.0, 1.0),
}

# GalSim's Sérsic is defined for 0.3 <= n <= 6.2; the last digit of round-off
# at 6.2 trips its range check, hence the margin.
_N_LIMITS = (0.3, 6.2 - 1e-9)
#: The flattest galaxy drawn: b/a = 1 - ellipticity must stay positive.
_MAX_ELLIPTICITY = 0.95


def draw_parameters(n, ranges=None, *, random_state=None):
    """Draw galaxy parameters uniformly within ranges.

    Parameters
    ----------
    n : int
        Number of galaxies.
    ranges : dict, optional
        ``{name: (low, high)}`` for ``mag`` (AB), ``r_eff`` (pix, semi-major
        axis), ``sersic_n``, ``ellipticity`` (1 - b/a); missing names take
        `THESIS_RANGES`.  Ellipticity is capped at 0.95 (GalSim needs b > 0).
    random_state : int, `~numpy.random.RandomState` or None
        Seed.

    Returns
    -------
    truth : `~astropy.table.QTable`
        Columns ``mag`` [ABmag], ``r_eff`` [pix], ``sersic_n``,
        ``ellipticity`` and position angle ``pa`` [deg].

    Raises
    ------
    ValueError
        If a range is empty, unknown, or outside what can be drawn
        (``sersic_n`` outside 0.3–6.2, ``r_eff`` <= 0, ellipticity outside [0, 1)).

    Examples
    --------
    >>> from astromorphnet.simulation import draw_parameters
    >>> truth = draw_parameters(3, {"sersic_n": (1, 4)}, random_state=1)
    >>> truth.colnames
    ['mag', 'r_eff', 'sersic_n', 'ellipticity', 'pa']
    """
    ranges = {**THESIS_RANGES, **(ranges or {})}
    unknown = set(ranges) - set(THESIS_RANGES)
    if unknown:
        raise ValueError(f"unknown parameter range(s) {sorted(unknown)}; "
                         f"expected names among {list(THESIS_RANGES)}")
    for name, (low, high) in ranges.items():
        if not low <= high:
            raise ValueError(f"{name} range ({low}, {high}) is empty: low must be <= high")
    if not (_N_LIMITS[0] <= ranges["sersic_n"][0] and ranges["sersic_n"][1] <= 6.2):
        raise ValueError(f"sersic_n range {ranges['sersic_n']} is outside GalSim's "
                         "valid 0.3-6.2")
    if ranges["r_eff"][0] <= 0:
        raise ValueError(f"r_eff range {ranges['r_eff']} must be positive (pixels)")
    if ranges["ellipticity"][0] < 0 or ranges["ellipticity"][1] >= 1 + 1e-12:
        raise ValueError(f"ellipticity range {ranges['ellipticity']} must lie in [0, 1)")
    rng = check_random_state(random_state)
    truth = QTable()
    for name, unit in (("mag", u.ABmag), ("r_eff", u.pix), ("sersic_n", None),
                       ("ellipticity", None)):
        low, high = ranges[name]
        values = rng.uniform(low, high, n)
        if name == "sersic_n":
            values = np.clip(values, *_N_LIMITS)
        if name == "ellipticity":
            values = np.minimum(values, _MAX_ELLIPTICITY)
        truth[name] = values if unit is None else values * unit
    truth["pa"] = rng.uniform(0.0, 180.0, n) * u.deg
    return truth


def simulate_galaxies(n, stamp_size=64, *, ranges=None, pixel_scale=0.06, zeropoint=25.94,
                      psf_fwhm=0.18, noise_sigma=0.008, random_state=None, verbose=False):
    """Simulate noisy, PSF-convolved single-Sérsic galaxy cutouts.

    Defaults mimic HST/CANDELS WFC3 F160W: 0.06"/pixel, AB zeropoint 25.94,
    a Moffat (β = 3) PSF of 0.18" FWHM and Gaussian background noise.
    Galaxies are centred (within ±0.5 pixel) with random position angle.

    Conventions: ``r_eff`` is the half-light radius along the **semi-major
    axis** (GALFIT's); GalSim's circularised ``half_light_radius`` is
    ``r_eff * sqrt(b/a)``.  ``mag`` is the total (untruncated) AB magnitude.

    Parameters
    ----------
    n : int
        Number of galaxies.
    stamp_size : int, optional
        Square stamp size in pixels.
    ranges : dict, optional
        Parameter ranges, see `draw_parameters`.
    pixel_scale : float, optional
        Arcsec per pixel.
    zeropoint : float, optional
        AB magnitude of a total flux of 1 (pixel unit).
    psf_fwhm : float, optional
        PSF FWHM in arcsec.
    noise_sigma : float, optional
        Standard deviation of the Gaussian background noise per pixel.
    random_state : int, `~numpy.random.RandomState` or None
        Seed (parameters, positions and noise).
    verbose : bool, optional
        Show a progress bar.

    Returns
    -------
    images : `~numpy.ndarray`
        float32 ``(n, stamp_size, stamp_size)``.
    truth : `~astropy.table.QTable`
        The parameters drawn (see `draw_parameters`) and the centre's
        offset ``dx``, ``dy`` [pix] from the stamp centre; ``meta`` holds the
        survey settings (``zeropoint``, ``pixel_scale``, ``psf_fwhm``,
        ``noise_sigma``).

    Examples
    --------
    >>> from astromorphnet.simulation import simulate_galaxies
    >>> images, truth = simulate_galaxies(2, stamp_size=32, random_state=0)
    >>> images.shape
    (2, 32, 32)
    >>> truth.meta["zeropoint"]
    25.94
    """
    import galsim

    if n < 1:
        raise ValueError(f"n must be a positive number of galaxies; got {n}")
    rng = check_random_state(random_state)
    truth = draw_parameters(n, ranges, random_state=rng)
    offsets = rng.uniform(-0.5, 0.5, (n, 2))
    noise_seeds = rng.randint(1, 2**31 - 1, n)
    psf = galsim.Moffat(beta=3.0, fwhm=psf_fwhm)
    images = np.empty((n, stamp_size, stamp_size), np.float32)
    for i in ProgressBar(n) if verbose else range(n):
        q = 1.0 - float(truth["ellipticity"][i])
        r_eff = float(truth["r_eff"][i].value) * pixel_scale
        flux = 10 ** (-0.4 * (float(truth["mag"][i].value) - zeropoint))
        galaxy = galsim.Sersic(n=float(truth["sersic_n"][i]),
                               half_light_radius=r_eff * np.sqrt(q), flux=flux)
        galaxy = galaxy.shear(q=q, beta=float(truth["pa"][i].value) * galsim.degrees)
        image = galsim.Convolve(galaxy, psf).drawImage(
            nx=stamp_size, ny=stamp_size, scale=pixel_scale,
            offset=tuple(offsets[i]))
        image.addNoise(galsim.GaussianNoise(galsim.BaseDeviate(int(noise_seeds[i])),
                                            sigma=noise_sigma))
        images[i] = image.array
    truth["dx"] = offsets[:, 0] * u.pix
    truth["dy"] = offsets[:, 1] * u.pix
    truth.meta.update(zeropoint=zeropoint, pixel_scale=pixel_scale, psf_fwhm=psf_fwhm,
                      noise_sigma=noise_sigma, r_eff_convention="semi-major axis")
    return images, truth

"""Simulated survey cutouts: fast rendering, optional realism, parallel, seeded.

Every galaxy gets its own random stream, seeded from ``(random_state,
index)``, so the images do not depend on ``n_jobs``, on chunking, or on
where an interrupted run resumed.
"""

import numbers

import astropy.units as u
import numpy as np
from astropy.utils.console import ProgressBar

from ..catalog._targets import SersicCatalog
from .._parallel import effective_n_jobs, ordered_map, with_progress
from ._parameters import _check_count, _check_number, _is_number, check_truth, draw_parameters
from ._render import PSFKernel, render_sersic
from ._survey import SurveyConfig, _as_galsim_psf

__all__ = ["Realism", "simulate_galaxies", "master_seed"]

#: Galaxies rendered per task sent to a worker process.
_TASK_SIZE = 32


class Realism:
    """Optional departures from a clean single-Sérsic galaxy.

    Use them to build harder training sets, or "real-like" validation sets.
    Label convention: ``mag`` is always the galaxy's **total** magnitude
    (bulge, disk and knots together); ``r_eff``, ``sersic_n``,
    ``ellipticity`` and ``pa`` describe the main Sérsic component (the disk
    when there is a bulge).  Extra truth columns record what was added.

    Parameters
    ----------
    knot_fraction : float or (float, float)
        Fraction of the main component's light moved into star-forming knots
        (point sources distributed as an exponential disk of the same
        ``r_eff``, axis ratio and angle); a pair draws it uniformly per galaxy.
    n_knots : int
        Knots per galaxy (when ``knot_fraction`` > 0).
    neighbours : float
        Mean number (Poisson) of neighbouring galaxies per stamp, drawn from
        the same parameter ranges and placed away from the centre.
    sky_gradient : float
        Maximum amplitude of a residual sky plane across the stamp, in
        units of the background noise's standard deviation.
    cosmic_rays : float
        Mean number (Poisson) of cosmic-ray hits (unconvolved streaks of
        hot pixels, 10–100σ) per stamp.
    bulge_fraction : float or (float, float)
        Bulge-to-total light ratio B/T; a pair draws it uniformly per galaxy.
        The bulge is a de Vaucouleurs (n = 4) profile concentric with the
        galaxy at the same position angle; the main component keeps the
        other ``1 - B/T`` of the total light.  Truth columns
        ``bulge_fraction``, ``bulge_r_eff`` [pix] and ``bulge_ellipticity``
        record each bulge.
    bulge_radius_ratio : float
        The bulge's semi-major-axis ``r_eff`` over the galaxy's (default 0.3:
        bulges are compact next to their disks).
    bulge_axis_ratio : float
        The bulge's b/a is this or the galaxy's, whichever is rounder
        (default 0.8: bulges are rounder than inclined disks).

    Raises
    ------
    ValueError
        If a fraction lies outside [0, 1), a count or amplitude is negative
        or not finite, ``n_knots`` is not an integer, ``bulge_radius_ratio``
        is not positive or ``bulge_axis_ratio`` is outside (0, 1].

    Examples
    --------
    >>> from astromorphnet.simulation import Realism
    >>> Realism(knot_fraction=(0, 0.3), neighbours=0.5).knot_fraction
    (0, 0.3)
    """

    def __init__(self, knot_fraction=0.0, n_knots=10, neighbours=0.0, sky_gradient=0.0,
                 cosmic_rays=0.0, bulge_fraction=0.0, bulge_radius_ratio=0.3,
                 bulge_axis_ratio=0.8):
        for name, value in (("knot_fraction", knot_fraction), ("bulge_fraction", bulge_fraction)):
            _fraction_range(name, value)
        if not (_is_number(bulge_axis_ratio) and 0 < bulge_axis_ratio <= 1):
            raise ValueError(f"bulge_axis_ratio must lie in (0, 1]; got {bulge_axis_ratio!r}")
        self.knot_fraction = knot_fraction
        self.n_knots = _check_count("n_knots", n_knots, minimum=0)
        self.neighbours = _check_number("neighbours", neighbours, 0)
        self.sky_gradient = _check_number("sky_gradient", sky_gradient, 0)
        self.cosmic_rays = _check_number("cosmic_rays", cosmic_rays, 0)
        self.bulge_fraction = bulge_fraction
        self.bulge_radius_ratio = _check_number("bulge_radius_ratio", bulge_radius_ratio, 0,
                                                strict=True)
        self.bulge_axis_ratio = float(bulge_axis_ratio)

    def knot_range(self):
        """The range the knot fraction is drawn from.

        Returns
        -------
        low, high : float
            Equal when ``knot_fraction`` is a single value.

        Examples
        --------
        >>> from astromorphnet.simulation import Realism
        >>> Realism(knot_fraction=0.2).knot_range()
        (0.2, 0.2)
        """
        return _fraction_range("knot_fraction", self.knot_fraction)

    def describe(self):
        """A JSON-friendly summary, stored with simulated sets.

        Returns
        -------
        summary : dict
            Every setting, fractions as ``[low, high]``.

        Examples
        --------
        >>> from astromorphnet.simulation import Realism
        >>> Realism(cosmic_rays=0.5).describe()["cosmic_rays"]
        0.5
        """
        return {"knot_fraction": list(self.knot_range()), "n_knots": self.n_knots,
                "neighbours": self.neighbours, "sky_gradient": self.sky_gradient,
                "cosmic_rays": self.cosmic_rays,
                "bulge_fraction": list(_fraction_range("bulge_fraction", self.bulge_fraction)),
                "bulge_radius_ratio": self.bulge_radius_ratio,
                "bulge_axis_ratio": self.bulge_axis_ratio}

    def __repr__(self):
        return "Realism(" + ", ".join(f"{k}={v}" for k, v in self.describe().items()) + ")"


def _fraction_range(name, value):
    """``(low, high)`` of a fraction given as one value or a pair, checked to lie in [0, 1)."""
    pair = np.asarray(value, dtype=float).ravel()
    if pair.size == 1:
        pair = np.repeat(pair, 2)
    if pair.size != 2 or not 0 <= pair[0] <= pair[1] < 1:
        raise ValueError(f"{name} must be a fraction in [0, 1) or a (low, high) pair of "
                         f"them; got {value}")
    return float(pair[0]), float(pair[1])


def master_seed(random_state):
    """One integer seed, from which every galaxy's random stream is derived.

    Parameters
    ----------
    random_state : int, `~numpy.random.RandomState`, `~numpy.random.Generator` or None
        An integer >= 0 is used as is; a random generator draws the seed;
        None draws it from fresh entropy.

    Returns
    -------
    seed : int

    Raises
    ------
    ValueError
        If ``random_state`` is none of these (e.g. 2.5, -1, True or "0").

    Examples
    --------
    >>> import numpy as np
    >>> from astromorphnet.simulation import master_seed
    >>> master_seed(42)
    42
    >>> master_seed(np.random.RandomState(0)) == master_seed(np.random.RandomState(0))
    True
    """
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0] >> 1)
    if (isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral)
            or random_state < 0):
        raise ValueError("random_state must be an integer >= 0, a numpy RandomState or "
                         f"Generator, or None; got {random_state!r}")
    return int(random_state)


def _galaxy_rng(seed, index, stream=0):
    """Galaxy ``index``'s own generator: independent of n_jobs and chunking."""
    return np.random.default_rng(np.random.SeedSequence([seed, index, stream]))


def simulate_galaxies(n=None, survey="CANDELS_F160W", *, truth=None, ranges=None,
                      realism=None, stamp_size=None, n_jobs=1, random_state=None,
                      verbose=False):
    """Simulate noisy, PSF-convolved single-Sérsic galaxy cutouts.

    Galaxies are rendered analytically on an oversampled grid and convolved
    with the survey PSF (`render_sersic`: flux and half-light radius within
    1 % of GalSim's exact rendering, ~20–100× faster for random n), then
    GalSim adds the survey's noise.  Each galaxy is centred within ±0.5 pixel
    of the stamp centre at a random position angle.

    Conventions: ``r_eff`` is the half-light radius along the **semi-major
    axis** (GALFIT's; GalSim's circularised ``half_light_radius`` is
    ``r_eff * sqrt(1 - ellipticity)``); ``mag`` is the total, untruncated AB
    magnitude (a large galaxy may overflow its stamp, as in real cutouts).
    With a list of PSFs, ``psf_index`` records which one each galaxy got
    (see `SurveyConfig`).

    Parameters
    ----------
    n : int, optional
        Number of galaxies (when ``truth`` is not given).
    survey : str or `SurveyConfig`, optional
        A preset name (see `SurveyConfig.from_preset`) or a configuration.
    truth : `~astropy.table.QTable`, optional
        Parameters to draw (columns as from `draw_parameters`; ``pa``, ``dx``
        and ``dy`` default to 0), checked by `check_truth`.
    ranges : dict, optional
        Parameter ranges/distributions for `draw_parameters`.
    realism : `Realism`, optional
        Bulges, knots, neighbours, sky gradients, cosmic rays.
    stamp_size : int, optional
        Overrides the survey's stamp size.
    n_jobs : int, optional
        Worker processes (``-1``: all cores, ``-2`` all but one, ...).
        Results are identical for any value.  The workers (joblib's loky
        processes, reused between calls) end with the calling process.
    random_state : int, `~numpy.random.RandomState` or None
        Seed of parameters and every galaxy's noise.
    verbose : bool, optional
        Show a progress bar.

    Returns
    -------
    images : `~numpy.ndarray`
        The float32 ``(n, stamp_size, stamp_size)`` stamps, in image units (flux 1 ⇔
        ``mag = zeropoint``).
    truth : `~astropy.table.QTable`
        ``mag`` [ABmag], ``r_eff`` [pix], ``sersic_n``, ``ellipticity``,
        ``pa`` [deg], ``dx``/``dy`` [pix], ``psf_index`` with a list of PSFs,
        realism columns when used, and ``meta`` with the survey
        (``zeropoint``, ``pixel_scale``, …) and the seed.

    Raises
    ------
    ValueError
        On out-of-range or non-finite parameters, ``n`` not an integer >= 1,
        neither or both of ``n`` and ``truth`` (or ``ranges`` with
        ``truth``), an unknown survey preset, an invalid ``random_state`` or
        ``n_jobs``, or a galaxy that draws non-finite pixels (e.g. so bright
        that float32 overflows).

    Examples
    --------
    >>> from astromorphnet.simulation import simulate_galaxies
    >>> images, truth = simulate_galaxies(2, stamp_size=32, random_state=0)
    >>> images.shape
    (2, 32, 32)
    >>> truth.meta["zeropoint"]
    25.94
    """
    n_jobs = effective_n_jobs(n_jobs)
    survey = _as_survey(survey, stamp_size)
    seed = master_seed(random_state)
    truth = _truth_table(n, truth, ranges, survey, realism, seed)
    images = np.empty((len(truth), survey.stamp_size, survey.stamp_size), np.float32)
    for start, block in _render_blocks(truth, survey, realism, seed, n_jobs, verbose):
        images[start:start + len(block)] = block
    truth.meta.update(_survey_metadata(survey, seed, realism))
    return images, truth


def _survey_metadata(survey, seed, realism):
    """The ``meta`` of a simulated truth table."""
    return {"zeropoint": survey.zeropoint, "pixel_scale": survey.pixel_scale,
            "survey": survey.describe(), "seed": seed,
            "realism": None if realism is None else realism.describe(),
            "r_eff_convention": "semi-major axis"}


def _as_survey(survey, stamp_size):
    if isinstance(survey, str):
        survey = SurveyConfig.from_preset(survey)
    elif not isinstance(survey, SurveyConfig):
        raise ValueError(f"survey must be a preset name or a SurveyConfig; got {survey!r}")
    return survey if stamp_size is None else survey._replace(stamp_size=stamp_size)


def _truth_table(n, truth, ranges, survey, realism, seed):
    """The galaxies to draw, ``truth`` checked or ``n`` drawn, with per-galaxy columns."""
    if realism is not None and not isinstance(realism, Realism):
        raise ValueError(f"realism must be a Realism or None; got {realism!r}")
    if truth is None:
        if n is None:
            raise ValueError("pass n, a number of galaxies, or truth, a table of parameters")
        n = _check_count("n (the number of galaxies)", n)
        truth = draw_parameters(n, ranges, random_state=np.random.RandomState(seed % 2**32))
    elif n is not None:
        raise ValueError(f"pass n or truth, not both (truth has {len(truth)} rows; n={n!r})")
    elif ranges is not None:
        raise ValueError("ranges apply to drawn parameters, not to a given truth table: "
                         "pass one or the other")
    else:
        truth = check_truth(truth)
    truth = SersicCatalog(truth, copy=True)
    for name, default in (("pa", 0.0 * u.deg), ("dx", 0.0 * u.pix), ("dy", 0.0 * u.pix)):
        if name not in truth.colnames:
            truth[name] = np.full(len(truth), default.value) * default.unit
    if realism is not None:
        _add_realism_columns(truth, realism, seed)
    if isinstance(survey.psf, (list, tuple)):
        # A list as long as the set is one PSF per galaxy; otherwise each
        # galaxy draws one with the first value of its own stream.
        n, n_psfs = len(truth), len(survey.psf)
        truth["psf_index"] = (np.arange(n) if n_psfs == n else
                              [_galaxy_rng(seed, i).integers(n_psfs) for i in range(n)])
    return truth


def _add_realism_columns(truth, realism, seed):
    """Draw per-galaxy realism settings into the truth table (seeded per galaxy)."""
    rngs = [_galaxy_rng(seed, i, stream=1) for i in range(len(truth))]
    low, high = realism.knot_range()
    truth["knot_fraction"] = [r.uniform(low, high) for r in rngs]
    truth["n_neighbours"] = [r.poisson(realism.neighbours) for r in rngs]
    truth["n_cosmic_rays"] = [r.poisson(realism.cosmic_rays) for r in rngs]
    low, high = _fraction_range("bulge_fraction", realism.bulge_fraction)
    if high > 0:
        truth["bulge_fraction"] = [r.uniform(low, high) for r in rngs]
        truth["bulge_r_eff"] = truth["r_eff"] * realism.bulge_radius_ratio
        truth["bulge_ellipticity"] = np.minimum(truth["ellipticity"],
                                                1 - realism.bulge_axis_ratio)


def _render_blocks(truth, survey, realism, seed, n_jobs, verbose, index_offset=0):
    """Yield ``(start, images)`` blocks, in order, rendered in worker processes.

    Row ``i`` of ``truth`` is galaxy ``index_offset + i`` for seeding;
    ``n_jobs`` is a number of processes (`effective_n_jobs`).
    """
    columns = {name: np.asarray(getattr(truth[name], "value", truth[name]), float)
               for name in truth.colnames}
    psf_index = columns.get("psf_index", np.zeros(len(truth))).astype(int)
    psfs = survey._psf_list()
    kernels = {i: PSFKernel(_as_galsim_psf(psfs[i], survey.pixel_scale), survey.pixel_scale,
                            survey.oversampling) for i in np.unique(psf_index)}
    # Each task carries only its own galaxies' kernels, and the workers get
    # the survey without its PSFs: a per-galaxy PSF list is not sent whole.
    tasks = [(index_offset + start, {k: v[start:start + _TASK_SIZE] for k, v in columns.items()},
              {i: kernels[i] for i in np.unique(psf_index[start:start + _TASK_SIZE])})
             for start in range(0, len(truth), _TASK_SIZE)]
    # The artefacts' unit, looked up here once (CorrelatedNoise measures it),
    # not in every task of every worker.
    sigma = (np.sqrt(survey.noise.variance) if realism is not None and survey.noise is not None
             else 0.0)
    settings = (survey._replace(psf=None), realism, seed, len(psfs), sigma)
    bar = ProgressBar(len(tasks)) if verbose else None
    results = ordered_map(_render_task, [(settings, *task) for task in tasks],
                          n_jobs if len(tasks) > 1 else 1)
    yield from with_progress(results, bar, index_offset)


def _render_task(task):
    import galsim

    # One stamp is too small for GalSim's OpenMP threads: on a busy machine
    # they made the noise up to 50x slower (worker processes have one already).
    with galsim.utilities.single_threaded():
        return _render_block(*task)


def _render_block(settings, start, columns, kernels):
    import galsim

    survey, realism, seed, n_psfs, sigma = settings
    size = survey.stamp_size
    n = len(columns["mag"])
    block = np.empty((n, size, size), np.float32)
    for j in range(n):
        index = start + j
        row = {k: v[j] for k, v in columns.items()}
        rng = _galaxy_rng(seed, index)
        # The stream's first value picks a random PSF (see _truth_table); it is
        # drawn whatever the assignment so that the noise never depends on it.
        rng.integers(n_psfs)
        kernel = kernels[int(row.get("psf_index", 0))]
        image = _render_galaxy(row, survey, kernel, realism, rng)
        gs_image = galsim.Image(image, scale=survey.pixel_scale)
        if survey.noise is not None:
            survey.noise.add(gs_image, galsim.BaseDeviate(int(rng.integers(1, 2**31 - 1))))
        if realism is not None:
            _add_artefacts(gs_image.array, row, realism, sigma, rng)
        block[j] = gs_image.array
        if not np.isfinite(block[j]).all():
            # e.g. float32 overflow of a very bright galaxy, or an infinite
            # zeropoint or noise: never hand back an image that is not one.
            values = ", ".join(f"{k}={v:g}" for k, v in row.items())
            raise ValueError(f"galaxy {index} ({values}) drew non-finite pixels: check its "
                             "magnitude against the survey's zeropoint, and the survey's "
                             "noise and PSF")
    return start, block


def _render_galaxy(row, survey, kernel, realism, rng):
    flux = 10 ** (-0.4 * (row["mag"] - survey.zeropoint))
    shape = (survey.stamp_size, survey.stamp_size)
    bulge = row.get("bulge_fraction", 0.0)
    disk = flux * (1 - bulge)
    q = 1.0 - row["ellipticity"]
    knots = row.get("knot_fraction", 0.0)
    points = _knots(disk * knots, row, q, realism.n_knots, rng) if knots > 0 else None
    image = render_sersic(shape, disk * (1 - knots), row["r_eff"], row["sersic_n"], q,
                          row["pa"], kernel, dx=row["dx"], dy=row["dy"], points=points)
    if bulge > 0:
        image += render_sersic(shape, flux * bulge, row["bulge_r_eff"], 4.0,
                               1.0 - row["bulge_ellipticity"], row["pa"], kernel,
                               dx=row["dx"], dy=row["dy"])
    for _ in range(int(row.get("n_neighbours", 0))):
        image += _neighbour(shape, survey, kernel, rng)
    return image


def _knots(flux, row, q, n_knots, rng):
    """Knot positions (offsets from the centre, pixels) and fluxes.

    Distributed as an exponential disk of the galaxy's r_eff, axis ratio and
    angle: an exponential disk's radii follow Gamma(2, h), r_eff = 1.678 h.
    """
    radius = rng.gamma(2.0, row["r_eff"] / 1.678, n_knots)
    phi = rng.uniform(0, 2 * np.pi, n_knots)
    major, minor = radius * np.cos(phi), radius * q * np.sin(phi)
    pa = np.deg2rad(row["pa"])
    return (major * np.cos(pa) - minor * np.sin(pa), major * np.sin(pa) + minor * np.cos(pa),
            np.full(n_knots, flux / n_knots))


def _neighbour(shape, survey, kernel, rng):
    """A random galaxy placed off-centre (at least a quarter stamp away)."""
    params = draw_parameters(1, {"r_eff": (1.3, shape[0] / 6)}, random_state=np.random.
                             RandomState(int(rng.integers(2**31 - 1))))
    distance = rng.uniform(shape[0] / 4, shape[0] / 2)
    angle = rng.uniform(0, 2 * np.pi)
    return render_sersic(shape, 10 ** (-0.4 * (params["mag"][0].value - survey.zeropoint)),
                         params["r_eff"][0].value, params["sersic_n"][0],
                         1 - params["ellipticity"][0], params["pa"][0].value, kernel,
                         dx=distance * np.cos(angle), dy=distance * np.sin(angle))


def _sky_plane(shape, slope_x, slope_y, offset=0.0):
    """A residual sky plane: ``offset`` at the centre, changing by the slopes across the stamp."""
    ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx]
    return slope_x * (xx / (nx - 1) - 0.5) + slope_y * (yy / (ny - 1) - 0.5) + offset


def _add_artefacts(image, row, realism, sigma, rng):
    """Sky-subtraction residual plane and cosmic rays, in place (``sigma``: the noise's)."""
    if realism.sky_gradient > 0 and sigma > 0:
        slope = rng.uniform(-1, 1, 2) * realism.sky_gradient * sigma
        image += _sky_plane(image.shape, slope[0], slope[1])
    for _ in range(int(row.get("n_cosmic_rays", 0))):
        length = rng.integers(1, 6)
        angle = rng.uniform(0, np.pi)
        x0, y0 = rng.uniform(0, image.shape[1]), rng.uniform(0, image.shape[0])
        steps = np.arange(length)
        xs = np.clip(np.rint(x0 + steps * np.cos(angle)).astype(int), 0, image.shape[1] - 1)
        ys = np.clip(np.rint(y0 + steps * np.sin(angle)).astype(int), 0, image.shape[0] - 1)
        image[ys, xs] += rng.uniform(10, 100) * max(sigma, 1e-3)

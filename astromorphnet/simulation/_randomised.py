"""Domain-randomised training simulations: every galaxy sees its own PSF, noise and sky.

A network trained on one survey model learns that model's PSF and noise;
real cutouts differ in both.  Domain randomisation draws the nuisances per
galaxy from wide ranges around the survey preset, so that the survey model
becomes one draw among many and the network learns what does not change:
the galaxy.  The galaxy labels are untouched (same `draw_parameters` and the
same fast renderer as `simulate_galaxies`); the drawn nuisances are recorded
as extra truth columns.
"""

import dataclasses
import functools
import numbers

import astropy.units as u
import numpy as np
from astropy.utils.console import ProgressBar

from .._parallel import effective_n_jobs, ordered_map, with_progress
from ._parameters import _check_count, _is_number
from ._render import PSFKernel
from ._simulate import (_TASK_SIZE, Realism, _add_artefacts, _as_survey, _galaxy_rng,
                        _render_galaxy, _sky_plane, _survey_metadata, _truth_table,
                        master_seed, simulate_galaxies)
from ._survey import _psf_fwhm

__all__ = ["PSF_FAMILIES", "NOISE_CORRELATIONS", "RandomisationRanges", "SimulationStream",
           "simulate_randomised"]

#: PSF families `simulate_randomised` draws from.
PSF_FAMILIES = ("gaussian", "moffat", "airy", "spikes")

#: Noise correlations `simulate_randomised` draws from: white, white noise
#: smoothed by a Gaussian kernel, or HST ACS's measured (COSMOS) correlation.
NOISE_CORRELATIONS = ("none", "smoothed", "cosmos")

# Random stream of a galaxy's nuisances (0: its noise and realism draws,
# 1: `Realism` settings; see `_simulate._galaxy_rng`).
_NUISANCE_STREAM = 2

# Diffraction spikes: two crossed thin Gaussians, half a pixel wide (thinner
# ones force GalSim into huge FFTs, 0.8 s a PSF, and are unresolved anyway).
_SPIKE_WIDTH_PIXELS = 0.5


def _pair(name, value, low=None, high=None):
    """``value`` as a ``(low, high)`` float pair inside ``[low, high]``, or a ValueError."""
    pair = np.asarray(value, dtype=object).ravel()
    if (pair.size != 2 or not all(_is_number(v) and np.isfinite(v) for v in pair)
            or pair[0] > pair[1] or (low is not None and pair[0] < low)
            or (high is not None and pair[1] > high)):
        bounds = (f" within [{low}, {high}]" if high is not None else
                  f" with low >= {low}" if low is not None else "")
        raise ValueError(f"{name} must be a (low, high) pair of finite numbers, low <= high"
                         f"{bounds}; got {value!r}")
    return float(pair[0]), float(pair[1])


def _choices(name, value, allowed):
    """``value`` as a non-empty tuple of names from ``allowed``, or a ValueError."""
    if isinstance(value, str):
        value = (value,)
    value = tuple(value)
    if not value or not set(value) <= set(allowed):
        raise ValueError(f"{name} must be a non-empty sequence of {list(allowed)}; "
                         f"got {value!r}")
    return value


def _amplitude(name, value):
    if not (_is_number(value) and np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    return float(value)


# A dataclass for its equality, repr and asdict; its __init__ is written out so
# that it validates (and has source, for the docstring checks).
@dataclasses.dataclass(frozen=True, init=False)
class RandomisationRanges:
    """What `simulate_randomised` draws per galaxy, and from which ranges.

    Every ``(low, high)`` pair is drawn uniformly per galaxy; the families
    and correlations are drawn uniformly among those listed.  Override any
    field by passing a dict of the changes to `simulate_randomised`
    (``randomisation={"noise_scale": (1, 2)}``) or a new instance.

    Parameters
    ----------
    psf_fwhm_scale : (float, float)
        PSF FWHM over the survey preset's (its median FWHM for a PSF list).
    psf_ellipticity : (float, float)
        PSF ellipticity ``1 - b/a`` (area-preserving shear at a random
        angle: the FWHM is the geometric mean of the axes' FWHMs).
    psf_families : sequence of str
        Among `PSF_FAMILIES`: ``"gaussian"``, ``"moffat"``, ``"airy"``
        (with a central obscuration) and ``"spikes"`` (an obscured Airy
        with two crossed diffraction spikes).
    moffat_beta : (float, float)
        Moffat β (> 1.1: smaller β has unbounded wings).
    airy_obscuration : (float, float)
        Central obscuration (diameter ratio) of the Airy and spike families.
    spike_fraction : (float, float)
        Fraction of the PSF light in the spikes.
    spike_length : (float, float)
        Spike Gaussian σ along the spike, in units of the PSF FWHM.
    noise_scale : (float, float)
        Background noise σ over the survey preset's (0 is noiseless).
    noise_correlations : sequence of str
        Among `NOISE_CORRELATIONS`.
    noise_smoothing : (float, float)
        σ, in pixels, of the Gaussian that smooths ``"smoothed"`` noise.
    sky_offset : float
        Maximum constant sky residual, in units of the noise σ (drawn
        uniformly in ±``sky_offset``).
    sky_gradient : float
        Maximum amplitude of a residual sky plane across the stamp, in units
        of the noise σ (as `Realism`).
    knot_fraction : (float, float)
        Fraction of the galaxy's light in star-forming knots (as `Realism`).
    n_knots : int
        Knots per galaxy.
    neighbours : float
        Mean number (Poisson) of neighbouring galaxies per stamp.
    cosmic_rays : float
        Mean number (Poisson) of cosmic-ray hits per stamp.

    Raises
    ------
    ValueError
        If a pair is not ``low <= high`` within its bounds (scales and
        fractions >= 0, ellipticity and obscuration < 1, β > 1.1, spike
        fraction < 1), a family or correlation is unknown, or an amplitude
        or count is negative.

    Examples
    --------
    >>> from astromorphnet.simulation import RandomisationRanges
    >>> RandomisationRanges().psf_fwhm_scale
    (0.7, 2.5)
    >>> RandomisationRanges(psf_families=["moffat"]).psf_families
    ('moffat',)
    """

    psf_fwhm_scale: tuple
    psf_ellipticity: tuple
    psf_families: tuple
    moffat_beta: tuple
    airy_obscuration: tuple
    spike_fraction: tuple
    spike_length: tuple
    noise_scale: tuple
    noise_correlations: tuple
    noise_smoothing: tuple
    sky_offset: float
    sky_gradient: float
    knot_fraction: tuple
    n_knots: int
    neighbours: float
    cosmic_rays: float

    def __init__(self, *, psf_fwhm_scale=(0.7, 2.5), psf_ellipticity=(0.0, 0.15),
                 psf_families=PSF_FAMILIES, moffat_beta=(2.0, 5.0), airy_obscuration=(0.0, 0.4),
                 spike_fraction=(0.02, 0.08), spike_length=(1.5, 4.0), noise_scale=(0.5, 3.0),
                 noise_correlations=NOISE_CORRELATIONS, noise_smoothing=(0.5, 1.5),
                 sky_offset=0.5, sky_gradient=2.0, knot_fraction=(0.0, 0.3), n_knots=10,
                 neighbours=1.0, cosmic_rays=0.1):
        fix = functools.partial(object.__setattr__, self)  # frozen: set the checked values
        fix("psf_fwhm_scale", _pair("psf_fwhm_scale", psf_fwhm_scale, 1e-3))
        fix("psf_ellipticity", _pair("psf_ellipticity", psf_ellipticity, 0.0, 0.9))
        fix("psf_families", _choices("psf_families", psf_families, PSF_FAMILIES))
        fix("moffat_beta", _pair("moffat_beta", moffat_beta, 1.1))
        fix("airy_obscuration", _pair("airy_obscuration", airy_obscuration, 0.0, 0.9))
        fix("spike_fraction", _pair("spike_fraction", spike_fraction, 0.0, 0.5))
        fix("spike_length", _pair("spike_length", spike_length, 0.1))
        fix("noise_scale", _pair("noise_scale", noise_scale, 0.0))
        fix("noise_correlations", _choices("noise_correlations", noise_correlations,
                                           NOISE_CORRELATIONS))
        fix("noise_smoothing", _pair("noise_smoothing", noise_smoothing, 0.1))
        fix("sky_offset", _amplitude("sky_offset", sky_offset))
        fix("sky_gradient", _amplitude("sky_gradient", sky_gradient))
        fix("knot_fraction", _pair("knot_fraction", knot_fraction, 0.0, 0.99))
        fix("n_knots", _check_count("n_knots", n_knots, minimum=1))
        fix("neighbours", _amplitude("neighbours", neighbours))
        fix("cosmic_rays", _amplitude("cosmic_rays", cosmic_rays))

    @classmethod
    def _from(cls, value):
        """``value`` as ranges: None (defaults), a dict of changes, or an instance."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            unknown = set(value) - {f.name for f in dataclasses.fields(cls)}
            if unknown:
                raise ValueError(f"unknown randomisation setting(s) {sorted(unknown)}; "
                                 f"choose among {[f.name for f in dataclasses.fields(cls)]}")
            return cls(**value)
        raise ValueError("randomisation must be a RandomisationRanges, a dict of changes to "
                         f"the defaults, or None; got {value!r}")

    def describe(self):
        """A JSON-friendly summary, stored in the truth table's ``meta``.

        Returns
        -------
        summary : dict
            Every field; pairs and sequences as lists.

        Examples
        --------
        >>> from astromorphnet.simulation import RandomisationRanges
        >>> RandomisationRanges().describe()["noise_scale"]
        [0.5, 3.0]
        """
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    def _realism(self):
        """The `Realism` that draws and renders knots, neighbours and cosmic rays."""
        return Realism(knot_fraction=self.knot_fraction, n_knots=self.n_knots,
                       neighbours=self.neighbours, cosmic_rays=self.cosmic_rays)


def simulate_randomised(n, survey="CANDELS_F160W", *, ranges=None, randomisation=None,
                        stamp_size=None, n_jobs=1, random_state=None, verbose=False):
    """Simulate domain-randomised training galaxies around a survey preset.

    The galaxies are drawn as by `simulate_galaxies` (same parameter
    ranges, fast renderer and label conventions), but each sees its own
    PSF (family, FWHM, ellipticity), background noise (level and
    correlation), sky residual, knots, neighbours and cosmic rays, drawn
    from `RandomisationRanges` around the survey's PSF and noise.  A network
    trained on them learns the galaxies, not one survey model: train on
    these when the target's PSF or noise is not known exactly.

    Parameters
    ----------
    n : int
        Number of galaxies.
    survey : str or `SurveyConfig`, optional
        A preset name or a configuration: its pixel scale, zeropoint and
        stamp size are used as they are; its PSF FWHM and noise σ are the
        references the randomised ones scale (Gaussian noise of the
        background variance for `CCDNoise`; no survey noise: noiseless).
    ranges : dict, optional
        Galaxy parameter ranges for `draw_parameters`.
    randomisation : `RandomisationRanges` or dict, optional
        The nuisance ranges; a dict changes the defaults' fields.
    stamp_size : int, optional
        Overrides the survey's stamp size.
    n_jobs : int, optional
        Worker processes (``-1``: all cores); the images do not depend on it.
    random_state : int, `~numpy.random.RandomState` or None
        Seed of the parameters, nuisances and noise.
    verbose : bool, optional
        Show a progress bar.

    Returns
    -------
    images : `~numpy.ndarray`
        The float32 ``(n, stamp_size, stamp_size)`` stamps.
    truth : `~astropy.table.QTable`
        The galaxy columns of `simulate_galaxies`, the `Realism` columns
        ``knot_fraction``, ``n_neighbours``, ``n_cosmic_rays``, and the
        drawn nuisances: ``psf_family``, ``psf_fwhm`` [arcsec],
        ``psf_ellipticity``, ``psf_angle`` [deg], ``psf_moffat_beta`` and
        ``psf_obscuration`` (NaN when the family has none),
        ``psf_spike_fraction``, ``noise_scale``, ``noise_sigma`` (image
        units), ``noise_correlation``, ``noise_smoothing`` [pix] (0 unless
        smoothed), ``sky_offset``, ``sky_slope_x``, ``sky_slope_y`` (noise
        σ units; the slopes are the plane's change across the stamp).
        ``meta["randomisation"]`` holds the ranges.

    Raises
    ------
    ValueError
        On invalid ranges or randomisation, ``n`` not an integer >= 1, an
        unknown survey preset, or an invalid ``random_state`` or ``n_jobs``.

    See Also
    --------
    simulate_target : Harder targets, whose nuisances differ from these.

    Examples
    --------
    >>> from astromorphnet.simulation import simulate_randomised
    >>> images, truth = simulate_randomised(3, stamp_size=32, random_state=0)
    >>> images.shape, truth["psf_family"].tolist()
    ((3, 32, 32), ['airy', 'spikes', 'gaussian'])
    """
    n_jobs = effective_n_jobs(n_jobs)
    survey = _as_survey(survey, stamp_size)
    randomisation = RandomisationRanges._from(randomisation)
    n = _check_count("n (the number of galaxies)", n)
    seed = master_seed(random_state)
    realism = randomisation._realism()
    plain = survey._replace(psf=None)
    truth = _truth_table(n, None, ranges, plain, realism, seed)
    fwhm = float(np.median([_psf_fwhm(psf, survey.pixel_scale)
                            for psf in survey.psf_objects()]))
    sigma = 0.0 if survey.noise is None else float(np.sqrt(survey.noise.variance))
    _add_nuisance_columns(truth, randomisation, fwhm, sigma, seed)
    columns = {name: (np.asarray(truth[name]) if truth[name].dtype.kind == "U" else
                      np.asarray(getattr(truth[name], "value", truth[name]), float))
               for name in truth.colnames}
    tasks = [((plain, realism, seed), start,
              {k: v[start:start + _TASK_SIZE] for k, v in columns.items()})
             for start in range(0, n, _TASK_SIZE)]
    images = np.empty((n, survey.stamp_size, survey.stamp_size), np.float32)
    bar = ProgressBar(len(tasks)) if verbose else None
    results = ordered_map(_render_randomised, tasks, n_jobs if len(tasks) > 1 else 1)
    for start, block in with_progress(results, bar, 0):
        images[start:start + len(block)] = block
    truth.meta.update(_survey_metadata(survey, seed, realism))
    truth.meta["randomisation"] = randomisation.describe()
    truth.meta["reference_psf_fwhm"] = fwhm
    truth.meta["reference_noise_sigma"] = sigma
    return images, truth


class SimulationStream:
    """Fresh simulated galaxies for every training epoch, reproducible epoch by epoch.

    ``epoch(i)`` simulates a new set seeded by ``(random_state, i)``: the same
    call always gives the same galaxies, whichever epochs were drawn before
    and in which order, so a network can train on fresh galaxies every epoch
    and a run can resume at any epoch.  No Keras or TensorFlow is needed.

    Parameters
    ----------
    n : int
        Galaxies per epoch.
    survey : str or `SurveyConfig`, optional
        A preset name or a configuration.
    randomisation : `RandomisationRanges`, dict or False, optional
        The nuisance ranges of `simulate_randomised` (None: its defaults);
        False simulates plain survey galaxies with `simulate_galaxies`.
    ranges : dict, optional
        Galaxy parameter ranges for `draw_parameters`.
    stamp_size : int, optional
        Overrides the survey's stamp size.
    n_jobs : int, optional
        Worker processes per epoch; the galaxies do not depend on it.
    random_state : int, `~numpy.random.RandomState` or None
        Seed of the whole stream (None: drawn once, when the stream is made).

    Attributes
    ----------
    seed : int
        The stream's master seed.

    Raises
    ------
    ValueError
        If ``n`` is not an integer >= 1, ``random_state`` is invalid, or
        ``randomisation`` is invalid.

    Examples
    --------
    >>> from astromorphnet.simulation import SimulationStream
    >>> stream = SimulationStream(4, stamp_size=32, random_state=0)
    >>> images, truth = stream.epoch(3)
    >>> images.shape, truth.meta["epoch"]
    ((4, 32, 32), 3)
    >>> bool((stream.epoch(3)[0] == images).all())
    True
    """

    def __init__(self, n, survey="CANDELS_F160W", *, randomisation=None, ranges=None,
                 stamp_size=None, n_jobs=1, random_state=None):
        self.n = _check_count("n (galaxies per epoch)", n)
        self.survey = _as_survey(survey, stamp_size)
        self.randomisation = (False if randomisation is False
                              else RandomisationRanges._from(randomisation))
        self.ranges = ranges
        self.n_jobs = effective_n_jobs(n_jobs)
        self.seed = master_seed(random_state)

    def epoch_seed(self, i):
        """The seed of epoch ``i``'s galaxies.

        Parameters
        ----------
        i : int
            Epoch number, >= 0.

        Returns
        -------
        seed : int
            Derived from the stream's seed and ``i`` (independent streams).

        Raises
        ------
        ValueError
            If ``i`` is not an integer >= 0.

        Examples
        --------
        >>> from astromorphnet.simulation import SimulationStream
        >>> stream = SimulationStream(4, random_state=0)
        >>> stream.epoch_seed(1) == stream.epoch_seed(1) != stream.epoch_seed(2)
        True
        """
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) or i < 0:
            raise ValueError(f"the epoch must be an integer >= 0; got {i!r}")
        return int(np.random.SeedSequence([self.seed, int(i)]).generate_state(1)[0] >> 1)

    def epoch(self, i):
        """Epoch ``i``'s galaxies: a fresh, reproducible set.

        Parameters
        ----------
        i : int
            Epoch number, >= 0.

        Returns
        -------
        images : `~numpy.ndarray`
            The float32 ``(n, stamp_size, stamp_size)`` stamps.
        truth : `~astropy.table.QTable`
            As `simulate_randomised` (or `simulate_galaxies` without
            randomisation); ``meta["epoch"]`` is ``i``.

        Raises
        ------
        ValueError
            If ``i`` is not an integer >= 0.

        Examples
        --------
        >>> from astromorphnet.simulation import SimulationStream
        >>> stream = SimulationStream(2, stamp_size=32, randomisation=False, random_state=0)
        >>> bool(stream.epoch(0)[1]["mag"][0] != stream.epoch(1)[1]["mag"][0])
        True
        """
        seed = self.epoch_seed(i)
        kwargs = dict(ranges=self.ranges, n_jobs=self.n_jobs, random_state=seed)
        if self.randomisation is False:
            images, truth = simulate_galaxies(self.n, self.survey, **kwargs)
        else:
            images, truth = simulate_randomised(self.n, self.survey,
                                                randomisation=self.randomisation, **kwargs)
        truth.meta["epoch"] = int(i)
        return images, truth

    def __repr__(self):
        kind = "plain" if self.randomisation is False else "randomised"
        return (f"SimulationStream({self.n}, {self.survey.name!r}, {kind}, "
                f"stamp_size={self.survey.stamp_size}, seed={self.seed})")


def _add_nuisance_columns(truth, ranges, fwhm, sigma, seed):
    """Draw each galaxy's PSF, noise and sky into ``truth`` (its own stream, fixed order)."""
    rows = []
    for i in range(len(truth)):
        r = _galaxy_rng(seed, i, stream=_NUISANCE_STREAM)
        # Every value is drawn whatever the family, so that changing one
        # range or family list leaves the other draws of the stream in place.
        # (A choice among one draws nothing with ``integers``: pick by ``random``.)
        family = ranges.psf_families[int(r.random() * len(ranges.psf_families))]
        correlation = ranges.noise_correlations[int(r.random()
                                                    * len(ranges.noise_correlations))]
        draws = dict(
            psf_family=family,
            psf_fwhm=fwhm * r.uniform(*ranges.psf_fwhm_scale),
            psf_ellipticity=r.uniform(*ranges.psf_ellipticity),
            psf_angle=r.uniform(0.0, 180.0),
            psf_moffat_beta=r.uniform(*ranges.moffat_beta),
            psf_obscuration=r.uniform(*ranges.airy_obscuration),
            psf_spike_fraction=r.uniform(*ranges.spike_fraction),
            psf_spike_length=r.uniform(*ranges.spike_length),
            noise_scale=r.uniform(*ranges.noise_scale),
            noise_correlation=correlation,
            noise_smoothing=r.uniform(*ranges.noise_smoothing),
            sky_offset=r.uniform(-1, 1) * ranges.sky_offset,
            sky_slope_x=r.uniform(-1, 1) * ranges.sky_gradient,
            sky_slope_y=r.uniform(-1, 1) * ranges.sky_gradient)
        if family != "moffat":
            draws["psf_moffat_beta"] = np.nan
        if family not in ("airy", "spikes"):
            draws["psf_obscuration"] = np.nan
        if family != "spikes":
            draws["psf_spike_fraction"] = draws["psf_spike_length"] = 0.0
        if correlation != "smoothed":
            draws["noise_smoothing"] = 0.0
        rows.append(draws)
    for name in rows[0]:
        truth[name] = [row[name] for row in rows]
    truth["psf_fwhm"] = truth["psf_fwhm"] * u.arcsec
    truth["noise_sigma"] = truth["noise_scale"] * sigma


def _randomised_psf(row, pixel_scale):
    """The GalSim PSF of one galaxy, from its recorded nuisance columns."""
    import galsim

    family, fwhm = str(row["psf_family"]), float(row["psf_fwhm"])
    if family == "gaussian":
        psf = galsim.Gaussian(fwhm=fwhm)
    elif family == "moffat":
        psf = galsim.Moffat(beta=float(row["psf_moffat_beta"]), fwhm=fwhm)
    else:
        obscuration = float(row["psf_obscuration"])
        psf = galsim.Airy(lam_over_diam=fwhm / _airy_fwhm(obscuration), obscuration=obscuration)
        if family == "spikes":
            spike = float(row["psf_spike_fraction"])
            length = float(row["psf_spike_length"]) * fwhm
            width = _SPIKE_WIDTH_PIXELS * pixel_scale
            angle = np.deg2rad(float(row["psf_angle"]))
            # A transformation scales the flux by its determinant: set it after.
            spikes = [galsim.Gaussian(sigma=1.0).transform(
                length * np.cos(a), -width * np.sin(a), length * np.sin(a), width * np.cos(a)
            ).withFlux(spike / 2) for a in (angle + np.pi / 4, angle + 3 * np.pi / 4)]
            psf = galsim.Add([psf.withFlux(1.0 - spike), *spikes])
    if row["psf_ellipticity"] > 0:
        psf = psf.shear(q=1.0 - float(row["psf_ellipticity"]),
                        beta=float(row["psf_angle"]) * galsim.degrees)
    # As the CANDELS preset's PSF: the kernel is drawn 2-6x faster (Airy,
    # spikes), the light within the stamp unchanged to ~1e-3.
    return psf.withGSParams(galsim.GSParams(folding_threshold=2e-2))


@functools.lru_cache(maxsize=64)
def _airy_fwhm(obscuration):
    """FWHM of an Airy profile of unit λ/D with this central obscuration."""
    import galsim
    from scipy.optimize import brentq

    airy = galsim.Airy(lam_over_diam=1.0, obscuration=obscuration)
    half = airy.xValue(0.0, 0.0) / 2
    return 2 * brentq(lambda r: airy.xValue(r, 0.0) - half, 1e-3, 1.0, xtol=1e-10)


@functools.lru_cache(maxsize=1)
def _cosmos_noise():
    """GalSim's COSMOS correlated noise of unit variance, read once per process.

    Reused (its random stream reset per galaxy), it keeps its cached power
    spectrum per image shape: 1 ms a 64×64 stamp instead of 50.
    """
    import galsim

    return galsim.getCOSMOSNoise().withVariance(1.0)


def _noise_field(shape, scale, row, rng):
    """The galaxy's drawn background noise, zero-mean, ``noise_sigma`` per pixel."""
    import galsim
    from scipy.ndimage import gaussian_filter

    seed = int(rng.integers(1, 2**31 - 1))
    correlation = str(row["noise_correlation"])
    if correlation == "cosmos":
        noise = _cosmos_noise()
        noise.rng.reset(seed)
        field = galsim.Image(shape[1], shape[0], scale=scale, dtype=np.float64)
        field.addNoise(noise)
        field = field.array
    else:
        field = np.random.default_rng(seed).standard_normal(shape)
    if correlation == "smoothed":
        # Periodic smoothing keeps the field stationary; the kernel's norm
        # (that of a smoothed delta) rescales it to unit variance exactly.
        width = float(row["noise_smoothing"])
        delta = np.zeros(shape)
        delta[0, 0] = 1.0
        norm = np.sqrt((gaussian_filter(delta, width, mode="wrap") ** 2).sum())
        field = gaussian_filter(field, width, mode="wrap") / norm
    return float(row["noise_sigma"]) * field


def _render_randomised(task):
    import galsim

    # As `_simulate._render_task`: one thread for one stamp.
    with galsim.utilities.single_threaded():
        return _render_block(*task)


def _render_block(settings, start, columns):
    survey, realism, seed = settings
    n = len(columns["mag"])
    block = np.empty((n, survey.stamp_size, survey.stamp_size), np.float32)
    for j in range(n):
        index = start + j
        row = {k: v[j] for k, v in columns.items()}
        rng = _galaxy_rng(seed, index)
        kernel = PSFKernel(_randomised_psf(row, survey.pixel_scale), survey.pixel_scale,
                           survey.oversampling)
        image = _render_galaxy(row, survey, kernel, realism, rng)
        image += _noise_field(image.shape, survey.pixel_scale, row, rng)
        sigma = float(row["noise_sigma"])
        image += sigma * _sky_plane(image.shape, row["sky_slope_x"], row["sky_slope_y"],
                                    row["sky_offset"])
        _add_artefacts(image, row, realism, sigma, rng)  # cosmic rays
        block[j] = image
    return start, block

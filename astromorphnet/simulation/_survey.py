"""Survey configuration: pixel scale, zeropoint, PSF, noise and stamp size.

GalSim is imported inside methods only.
"""

import copy
import functools
import hashlib

import numpy as np

from ._parameters import _check_count, _check_number

__all__ = ["CCDNoise", "CorrelatedNoise", "GaussianNoise", "SurveyConfig", "PRESETS"]


class GaussianNoise:
    """White Gaussian background noise.

    Parameters
    ----------
    sigma : float
        Standard deviation per pixel (image units).

    Raises
    ------
    ValueError
        If ``sigma`` is negative or not a finite number.

    Examples
    --------
    >>> from astromorphnet.simulation import GaussianNoise
    >>> GaussianNoise(0.01).variance
    0.0001
    """

    def __init__(self, sigma):
        self.sigma = _check_number("noise sigma", sigma, 0)

    @property
    def variance(self):
        """Background variance per pixel.

        Examples
        --------
        >>> from astromorphnet.simulation import GaussianNoise
        >>> GaussianNoise(0.5).variance
        0.25
        """
        return self.sigma**2

    def add(self, image, rng):
        """Add noise to an image in place.

        Parameters
        ----------
        image : `galsim.Image`
            The noiseless image, in image units.
        rng : `galsim.BaseDeviate`
            The random stream.

        Examples
        --------
        >>> import galsim
        >>> from astromorphnet.simulation import GaussianNoise
        >>> image = galsim.Image(200, 200, scale=0.06)
        >>> GaussianNoise(0.01).add(image, galsim.BaseDeviate(1))
        >>> round(float(image.array.std()), 3)
        0.01
        """
        import galsim

        if self.sigma > 0:
            image.addNoise(galsim.GaussianNoise(rng, sigma=self.sigma))

    def __repr__(self):
        return f"GaussianNoise(sigma={self.sigma:g})"


class CCDNoise:
    """Poisson noise of sky and source plus Gaussian read noise.

    Images are in ADU (counts) per second, the unit the survey's zeropoint
    refers to.  The noise is drawn for ``exposure_time`` seconds: Poisson in
    electrons (``electrons = ADU * gain``), read noise in electrons, and the
    image converted back to ADU/s.  A higher gain (more electrons per ADU)
    means relatively less noise for the same image.

    Parameters
    ----------
    sky_level : float
        Sky background per pixel, ADU/s (already subtracted from the image).
    exposure_time : float
        Seconds.
    read_noise : float, optional
        Read noise per pixel, electrons.
    gain : float, optional
        Electrons per ADU.

    Raises
    ------
    ValueError
        If ``sky_level`` or ``read_noise`` is negative, ``exposure_time``
        or ``gain`` not positive, or one is not a finite number.

    Examples
    --------
    >>> from astromorphnet.simulation import CCDNoise
    >>> noise = CCDNoise(sky_level=10.0, exposure_time=100.0, read_noise=5.0, gain=2.0)
    >>> round(noise.variance, 6)  # (10 * 100 / 2 + (5 / 2)**2) / 100**2
    0.050625
    """

    def __init__(self, sky_level, exposure_time, read_noise=0.0, gain=1.0):
        self.sky_level = _check_number("CCDNoise sky_level", sky_level, 0)
        self.exposure_time = _check_number("CCDNoise exposure_time", exposure_time, 0,
                                           strict=True)
        self.read_noise = _check_number("CCDNoise read_noise", read_noise, 0)
        self.gain = _check_number("CCDNoise gain", gain, 0, strict=True)

    @property
    def variance(self):
        """Background variance per pixel (ADU/s)², from sky and read noise.

        Examples
        --------
        >>> from astromorphnet.simulation import CCDNoise
        >>> CCDNoise(sky_level=4.0, exposure_time=1.0, gain=1.0).variance
        4.0
        """
        t, g = self.exposure_time, self.gain
        return (self.sky_level * t / g + (self.read_noise / g) ** 2) / t**2

    def add(self, image, rng):
        """Add noise to an image in place.

        Parameters
        ----------
        image : `galsim.Image`
            The noiseless, sky-subtracted image, in ADU/s.
        rng : `galsim.BaseDeviate`
            The random stream.

        Examples
        --------
        >>> import galsim
        >>> from astromorphnet.simulation import CCDNoise
        >>> image = galsim.Image(200, 200, scale=0.2, init_value=1.0)  # 1 ADU/s of source
        >>> CCDNoise(sky_level=10.0, exposure_time=100.0, gain=2.0).add(
        ...     image, galsim.BaseDeviate(1))
        >>> round(float(image.array.var()), 3)  # (1 + 10) ADU/s * 100 s / 2 e-/ADU / 100**2
        0.055
        """
        import galsim

        t = self.exposure_time
        image *= t
        image.addNoise(galsim.CCDNoise(rng, sky_level=self.sky_level * t, gain=self.gain,
                                       read_noise=self.read_noise))
        image /= t

    def __repr__(self):
        return (f"CCDNoise(sky_level={self.sky_level:g}, exposure_time={self.exposure_time:g}, "
                f"read_noise={self.read_noise:g}, gain={self.gain:g})")


class CorrelatedNoise:
    """Spatially correlated noise measured on real blank sky.

    Parameters
    ----------
    source : "cosmos" or `~numpy.ndarray`
        ``"cosmos"``: the HST ACS COSMOS correlation function that GalSim
        ships (offline); or a background-subtracted blank-sky image whose
        correlation function is measured.
    variance : float, optional
        Rescale the noise to this variance per pixel (default: as measured).
    pixel_scale : float, optional
        Arcsec per pixel of the blank-sky image (default: the survey's).

    Raises
    ------
    ValueError
        If ``source`` is neither ``"cosmos"`` nor a finite 2-D image, or
        ``variance`` or ``pixel_scale`` is not a finite positive number.

    Examples
    --------
    >>> from astromorphnet.simulation import CorrelatedNoise
    >>> CorrelatedNoise("cosmos", variance=1e-4).variance
    0.0001
    >>> f"{CorrelatedNoise('cosmos').variance:.3g}"  # as measured on COSMOS blank sky
    '9.99e-06'
    """

    def __init__(self, source="cosmos", variance=None, pixel_scale=None):
        if isinstance(source, str) and source != "cosmos":
            raise ValueError(f"CorrelatedNoise source must be 'cosmos' or a blank-sky "
                             f"image; got {source!r}")
        if not isinstance(source, str):
            source = np.asarray(source, dtype=float)
            if source.ndim != 2 or not np.isfinite(source).all():
                raise ValueError("a blank-sky image must be a finite 2-D array")
        if variance is not None:
            variance = _check_number("variance", variance, 0, strict=True)
        if pixel_scale is not None:
            pixel_scale = _check_number("pixel_scale", pixel_scale, 0, strict=True)
        self.source = source
        self._variance = variance
        self.pixel_scale = pixel_scale

    @property
    def variance(self):
        """Variance per pixel: as requested, or as measured by GalSim.

        Examples
        --------
        >>> import numpy as np
        >>> from astromorphnet.simulation import CorrelatedNoise
        >>> blank_sky = np.random.default_rng(0).normal(0.0, 0.1, (64, 64))
        >>> round(CorrelatedNoise(blank_sky).variance, 2)
        0.01
        """
        if self._variance is not None:
            return self._variance
        if not hasattr(self, "_measured_variance"):  # GalSim measures it: do it once
            self._measured_variance = self._galsim_noise(None, 1.0).getVariance()
        return self._measured_variance

    def _galsim_noise(self, rng, pixel_scale):
        import galsim

        if isinstance(self.source, str):
            noise = galsim.getCOSMOSNoise(rng=rng)
        else:
            image = galsim.Image(self.source - self.source.mean(),
                                 scale=self.pixel_scale or pixel_scale)
            noise = galsim.CorrelatedNoise(image, rng=rng)
        return noise if self._variance is None else noise.withVariance(self._variance)

    def add(self, image, rng):
        """Add noise to an image in place.

        Parameters
        ----------
        image : `galsim.Image`
            The noiseless image, with its pixel scale set.
        rng : `galsim.BaseDeviate`
            The random stream.

        Examples
        --------
        >>> import galsim
        >>> from astromorphnet.simulation import CorrelatedNoise
        >>> image = galsim.Image(200, 200, scale=0.06)
        >>> CorrelatedNoise("cosmos", variance=1e-4).add(image, galsim.BaseDeviate(1))
        >>> round(float(image.array.var()) / 1e-4, 1)
        1.0
        """
        image.addNoise(self._galsim_noise(rng, image.scale))

    def __repr__(self):
        kind = "'cosmos'" if isinstance(self.source, str) else _describe(self.source)
        scale = "" if self.pixel_scale is None else f", pixel_scale={self.pixel_scale}"
        return f"CorrelatedNoise({kind}, variance={self._variance}{scale})"


class SurveyConfig:
    """How a survey images galaxies: everything a simulation needs.

    Parameters
    ----------
    name : str
        Label stored with simulated sets.
    pixel_scale : float
        Arcsec per pixel.
    zeropoint : float
        AB magnitude of a total flux of 1 in image units.
    psf : `galsim.GSObject`, `~numpy.ndarray`, str or list
        The PSF: a GalSim profile, an image array sampled at ``pixel_scale``
        (or a FITS path to one), or a list of those (PSF variation).  A list
        as long as the simulated set gives galaxy ``i`` the PSF ``psf[i]``;
        from a list of any other length each galaxy draws one at random.
        Simulations record the choice in a ``psf_index`` truth column.
    noise : `GaussianNoise`, `CCDNoise`, `CorrelatedNoise` or None
        Background noise model.
    stamp_size : int
        Cutout size in pixels.
    oversampling : int, optional
        Sub-pixels per pixel of the fast renderer.

    Raises
    ------
    ValueError
        If ``pixel_scale`` is not a finite positive number, ``zeropoint``
        not a finite number, ``stamp_size`` not an integer >= 8,
        ``oversampling`` not an integer >= 1, or ``noise`` not a noise
        model (or None).

    Examples
    --------
    >>> from astromorphnet.simulation import SurveyConfig
    >>> survey = SurveyConfig.from_preset("CANDELS_F160W", stamp_size=64)
    >>> survey.pixel_scale, survey.zeropoint, survey.stamp_size
    (0.06, 25.94, 64)
    """

    def __init__(self, name, *, pixel_scale, zeropoint, psf, noise, stamp_size=64,
                 oversampling=3):
        if noise is not None and not (hasattr(noise, "add") and hasattr(noise, "variance")):
            raise ValueError("noise must be a GaussianNoise, CCDNoise or CorrelatedNoise "
                             f"(or None); got {noise!r}")
        self.name = name
        self.pixel_scale = _check_number("pixel_scale", pixel_scale, 0, strict=True)
        self.zeropoint = _check_number("zeropoint", zeropoint)
        self.psf = psf
        self.noise = noise
        self.stamp_size = _check_count("stamp_size", stamp_size, minimum=8)
        self.oversampling = _check_count("oversampling", oversampling)

    @classmethod
    def from_preset(cls, name, **changes):
        """A copy of a preset in `PRESETS`, with ``changes`` applied.

        Parameters
        ----------
        name : str
            A key of `PRESETS`: ``"CANDELS_F160W"``,
            ``"CANDELS_F160W_REAL_LIKE"``, ``"CANDELS_F160W_HARD"``,
            ``"GROUND_R"`` or ``"GROUND_DEEP"``.
        **changes
            Attributes to override (e.g. ``stamp_size=64``).

        Returns
        -------
        survey : SurveyConfig
            A new configuration; the preset itself is never modified.

        Raises
        ------
        ValueError
            If the preset is unknown or a change is invalid.

        Examples
        --------
        >>> from astromorphnet.simulation import GaussianNoise, SurveyConfig
        >>> SurveyConfig.from_preset("GROUND_R", noise=GaussianNoise(0.1)).noise
        GaussianNoise(sigma=0.1)
        """
        if name not in PRESETS:
            raise ValueError(f"unknown survey preset {name!r}; choose among {sorted(PRESETS)}")
        params = {**copy.deepcopy(PRESETS[name]), **changes}
        return cls(params.pop("name", name), **params)

    def _replace(self, **changes):
        """A copy with ``changes`` applied, validated as a new configuration."""
        params = dict(pixel_scale=self.pixel_scale, zeropoint=self.zeropoint, psf=self.psf,
                      noise=self.noise, stamp_size=self.stamp_size,
                      oversampling=self.oversampling)
        return SurveyConfig(self.name, **{**params, **changes})

    def _psf_list(self):
        """The PSF entries as given: one, or the list of a variable PSF."""
        return list(self.psf) if isinstance(self.psf, (list, tuple)) else [self.psf]

    def psf_objects(self):
        """The PSF(s) as GalSim profiles.

        Returns
        -------
        psfs : list of `galsim.GSObject`
            One per entry of ``psf`` (image arrays and FITS files become
            normalised `galsim.InterpolatedImage` profiles).

        Raises
        ------
        ValueError
            If there is no PSF, or a PSF image is not 2-D or has non-finite
            values or a sum <= 0.

        Examples
        --------
        >>> import galsim
        >>> from astromorphnet.simulation import SurveyConfig
        >>> survey = SurveyConfig("two PSFs", pixel_scale=0.2, zeropoint=27.0, noise=None,
        ...                       psf=[galsim.Gaussian(fwhm=0.7), galsim.Gaussian(fwhm=0.9)])
        >>> [round(psf.fwhm, 2) for psf in survey.psf_objects()]
        [0.7, 0.9]
        """
        return [_as_galsim_psf(psf, self.pixel_scale) for psf in self._psf_list()]

    def describe(self):
        """A JSON-friendly summary, stored with simulated sets.

        Returns
        -------
        summary : dict
            ``name``, ``pixel_scale``, ``zeropoint``, ``stamp_size``,
            ``oversampling``, and text descriptions of ``psf`` and ``noise``
            (image arrays identified by shape and SHA-256 digest).

        Examples
        --------
        >>> from astromorphnet.simulation import SurveyConfig
        >>> SurveyConfig.from_preset("GROUND_R").describe()["psf"]
        'Kolmogorov(0.7" FWHM) seeing'
        """
        return {"name": self.name, "pixel_scale": self.pixel_scale,
                "zeropoint": self.zeropoint, "stamp_size": self.stamp_size,
                "psf": _describe_psf(self.psf), "noise": repr(self.noise),
                "oversampling": self.oversampling}

    def __repr__(self):
        return (f"SurveyConfig({self.name!r}, pixel_scale={self.pixel_scale}, "
                f"zeropoint={self.zeropoint}, stamp_size={self.stamp_size}, "
                f"psf={_describe_psf(self.psf)}, noise={self.noise!r})")


def _as_galsim_psf(psf, pixel_scale):
    """One PSF entry as a `galsim.GSObject` (an image is normalised to unit flux)."""
    import galsim

    if isinstance(psf, _LazyPSF):
        psf = psf.factory()
    if isinstance(psf, galsim.GSObject):
        return psf
    if psf is None:
        raise ValueError("the survey has no PSF: pass a GalSim profile, a PSF image or the "
                         "path of a FITS file holding one")
    if isinstance(psf, str):
        from astropy.io import fits

        psf = fits.getdata(psf)
    array = np.asarray(psf, dtype=float)
    if array.ndim != 2:
        raise ValueError(f"a PSF image must be 2-D; got shape {array.shape}")
    if not (np.isfinite(array).all() and array.sum() > 0):
        raise ValueError("a PSF image must hold finite values with a positive sum (it is "
                         f"normalised to unit flux); got sum {array.sum():g}")
    return galsim.InterpolatedImage(galsim.Image(array / array.sum(), scale=pixel_scale))


def _psf_fwhm(psf, pixel_scale):
    """FWHM of a PSF profile, arcsec: the diameter of the circle as large as its half-maximum area.

    Drawn at a tenth of a pixel, so it holds for elliptical, aberrated and
    spiked PSFs alike (GalSim's ``calculateFWHM`` assumes a radial profile).
    """
    scale = pixel_scale / 10
    image = psf.drawImage(nx=400, ny=400, scale=scale, method="no_pixel").array
    area = np.count_nonzero(image >= image.max() / 2) * scale**2
    return float(2 * np.sqrt(area / np.pi))


def _describe(value):
    """``repr``, except that an array (whose repr elides values) is named by its digest."""
    if isinstance(value, np.ndarray):
        digest = hashlib.sha256(np.ascontiguousarray(value)).hexdigest()[:16]
        return f"image{value.shape} sha256:{digest}"
    return repr(value)


def _describe_psf(psf):
    """Text naming the PSF (or PSF list) exactly, short enough for an HDF5 attribute."""
    if not isinstance(psf, (list, tuple)):
        return _describe(psf)
    parts = [_describe(entry) for entry in psf]
    if len(parts) <= 4:
        return "[" + ", ".join(parts) + "]"
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return f"[{parts[0]}, ... {len(parts)} PSFs, sha256:{digest}]"


def _hst_f160w_psf(jitter=0.12):
    import galsim

    # Obscured 2.4 m Airy at 1.54 µm plus charge diffusion/jitter: ~0.18" FWHM.
    # A looser folding threshold draws it in 0.1 s instead of 5 s, same pixels
    # to 1e-4: the Airy's far wings otherwise force a huge FFT.
    return galsim.Convolve(galsim.Airy(lam=1536.9, diam=2.4, obscuration=0.33,
                                       scale_unit=galsim.arcsec),
                           galsim.Gaussian(fwhm=jitter),
                           gsparams=galsim.GSParams(folding_threshold=2e-2))


def _aberrated_hst_psf(index):
    """One of the varied, aberrated HST-like PSFs of the ``CANDELS_F160W_HARD`` preset.

    An obscured 2.4 m pupil with four struts (diffraction spikes) and
    Zernike aberrations (defocus, astigmatism, coma, trefoil, spherical;
    σ = 0.04 waves each times a severity rising from 1 to 2 with ``index``),
    convolved with 0.06–0.18" of jitter.  Drawn from a fixed stream per
    ``index``, so the preset is the same everywhere.
    """
    import galsim

    rng = np.random.default_rng([_HARD_PSF_SEED, index])
    severity = 1.0 + index / (_N_HARD_PSFS - 1)
    names = ("defocus", "astig1", "astig2", "coma1", "coma2", "trefoil1", "trefoil2",
             "spher")
    aberrations = dict(zip(names, rng.normal(0.0, 0.04 * severity, len(names))))
    optics = galsim.OpticalPSF(lam=1536.9, diam=2.4, obscuration=0.33, nstruts=4,
                               strut_thick=0.04, strut_angle=45 * galsim.degrees,
                               scale_unit=galsim.arcsec, **aberrations)
    return galsim.Convolve(optics, galsim.Gaussian(fwhm=rng.uniform(0.06, 0.18)),
                           gsparams=galsim.GSParams(folding_threshold=2e-2))


def _ground_moffat_psf(index):
    """One of the seeing PSFs of the ``GROUND_DEEP`` preset: Moffat, 0.6–1.2" FWHM.

    FWHM rises in 0.05" steps with ``index``; β cycles through 2.5, 3.5 and
    4.5; wind shake or guiding errors make some slightly elliptical (up to 0.06).
    """
    import galsim

    psf = galsim.Moffat(beta=2.5 + index % 3, fwhm=0.6 + 0.05 * index)
    return psf.shear(q=1.0 - 0.02 * (index % 4), beta=37.0 * index * galsim.degrees)


# The hard HST-like preset's PSFs: how many, and the stream they are drawn from.
_N_HARD_PSFS = 16
_HARD_PSF_SEED = 20261203


def _kolmogorov_psf(fwhm):
    import galsim

    return galsim.Kolmogorov(fwhm=fwhm)


class _LazyPSF:
    """Builds a GalSim PSF on first use, so presets import without GalSim.

    ``factory`` must be picklable (a module-level function or a
    `functools.partial` of one): surveys travel to worker processes.
    """

    def __init__(self, factory, description):
        self.factory, self.description = factory, description

    def __repr__(self):
        return self.description


#: Survey presets for `SurveyConfig.from_preset`.
PRESETS = {
    "CANDELS_F160W": dict(
        pixel_scale=0.06, zeropoint=25.94, stamp_size=128,
        psf=_LazyPSF(_hst_f160w_psf, "HST WFC3/IR F160W: Airy(2.4 m, 1.537 µm, obsc. 0.33) "
                                     "* Gaussian(0.12\")"),
        # CANDELS-deep-like depth: 5σ ≈ 27.5 AB in a 0.4" aperture.
        noise=GaussianNoise(0.008)),
    # A stand-in for *real* CANDELS cutouts (see simulation.simulate_real_like):
    # the PSF varies from galaxy to galaxy around the training model, and the
    # noise is correlated (drizzled HST) and 1.5x stronger than modelled.
    "CANDELS_F160W_REAL_LIKE": dict(
        pixel_scale=0.06, zeropoint=25.94, stamp_size=128,
        psf=[_LazyPSF(functools.partial(_hst_f160w_psf, jitter),
                      f"HST F160W Airy * Gaussian({jitter}\")") for jitter in (0.08, 0.12, 0.16)],
        noise=CorrelatedNoise("cosmos", variance=0.012**2)),
    # A harder HST-like target (see simulation.simulate_target, "hst_hard"):
    # 16 aberrated optical PSFs with struts, noise correlated as drizzled HST
    # and twice the training preset's.
    "CANDELS_F160W_HARD": dict(
        pixel_scale=0.06, zeropoint=25.94, stamp_size=128,
        psf=[_LazyPSF(functools.partial(_aberrated_hst_psf, i),
                      f"aberrated HST F160W OpticalPSF #{i}") for i in range(_N_HARD_PSFS)],
        noise=CorrelatedNoise("cosmos", variance=0.016**2)),
    # A deep ground-based survey (HSC/LSST-like i band; see simulate_target,
    # "ground"): Moffat seeing 0.6-1.2", 0.2" pixels, sky-limited CCD noise
    # (~20.5 mag/arcsec² for 20 minutes: 5σ ≈ 26 AB for a point source).
    "GROUND_DEEP": dict(
        pixel_scale=0.2, zeropoint=27.0, stamp_size=64,
        psf=[_LazyPSF(functools.partial(_ground_moffat_psf, i),
                      f"Moffat seeing {0.6 + 0.05 * i:.2f}\" FWHM") for i in range(13)],
        noise=CCDNoise(sky_level=8.0, exposure_time=1200.0, read_noise=5.0, gain=1.0)),
    "GROUND_R": dict(
        pixel_scale=0.2, zeropoint=27.0, stamp_size=64,
        psf=_LazyPSF(functools.partial(_kolmogorov_psf, 0.7), "Kolmogorov(0.7\" FWHM) seeing"),
        # Dark-sky r band, ~21 mag/arcsec², 10 minutes.
        noise=CCDNoise(sky_level=10.0, exposure_time=600.0, read_noise=5.0, gain=1.0)),
}

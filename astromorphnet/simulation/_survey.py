"""Survey configuration: pixel scale, zeropoint, PSF, noise and stamp size.

GalSim is imported inside methods only.
"""

import copy
import functools

import numpy as np

__all__ = ["CCDNoise", "CorrelatedNoise", "GaussianNoise", "SurveyConfig", "PRESETS"]


class GaussianNoise:
    """White Gaussian background noise.

    Parameters
    ----------
    sigma : float
        Standard deviation per pixel (image units).

    Examples
    --------
    >>> from astromorphnet.simulation import GaussianNoise
    >>> GaussianNoise(0.01).variance
    0.0001
    """

    def __init__(self, sigma):
        if not sigma >= 0:
            raise ValueError(f"noise sigma must be >= 0; got {sigma}")
        self.sigma = float(sigma)

    @property
    def variance(self):
        """Background variance per pixel."""
        return self.sigma**2

    def add(self, image, rng):
        """Add noise to a `galsim.Image` in place, from a `galsim.BaseDeviate`."""
        import galsim

        if self.sigma > 0:
            image.addNoise(galsim.GaussianNoise(rng, sigma=self.sigma))

    def __repr__(self):
        return f"GaussianNoise(sigma={self.sigma:g})"


class CCDNoise:
    """Poisson noise of sky and source plus Gaussian read noise.

    Images are in electrons per second; the noise is drawn in electrons for
    ``exposure_time`` and converted back.

    Parameters
    ----------
    sky_level : float
        Sky background per pixel, e-/s (already subtracted from the image).
    exposure_time : float
        Seconds.
    read_noise : float, optional
        Read noise per pixel, e-.
    gain : float, optional
        e-/ADU (kept for the record: images stay in e-/s).
    """

    def __init__(self, sky_level, exposure_time, read_noise=0.0, gain=1.0):
        if not (sky_level >= 0 and exposure_time > 0 and read_noise >= 0 and gain > 0):
            raise ValueError("CCDNoise needs sky_level >= 0, exposure_time > 0, "
                             "read_noise >= 0 and gain > 0")
        self.sky_level = float(sky_level)
        self.exposure_time = float(exposure_time)
        self.read_noise = float(read_noise)
        self.gain = float(gain)

    @property
    def variance(self):
        """Background variance per pixel (e-/s)², from sky and read noise."""
        t = self.exposure_time
        return (self.sky_level * t + self.read_noise**2) / t**2

    def add(self, image, rng):
        """Add noise to a `galsim.Image` (e-/s) in place."""
        import galsim

        t = self.exposure_time
        image *= t
        image.addNoise(galsim.CCDNoise(rng, sky_level=self.sky_level * t, gain=1.0,
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
    """

    def __init__(self, source="cosmos", variance=None, pixel_scale=None):
        if isinstance(source, str) and source != "cosmos":
            raise ValueError(f"CorrelatedNoise source must be 'cosmos' or a blank-sky "
                             f"image; got {source!r}")
        if not isinstance(source, str):
            source = np.asarray(source, dtype=float)
            if source.ndim != 2 or not np.isfinite(source).all():
                raise ValueError("a blank-sky image must be a finite 2-D array")
        if variance is not None and not variance > 0:
            raise ValueError(f"variance must be positive; got {variance}")
        self.source = source
        self.variance = variance
        self.pixel_scale = pixel_scale

    def _galsim_noise(self, rng, pixel_scale):
        import galsim

        if isinstance(self.source, str):
            noise = galsim.getCOSMOSNoise(rng=rng)
        else:
            image = galsim.Image(self.source - self.source.mean(),
                                 scale=self.pixel_scale or pixel_scale)
            noise = galsim.CorrelatedNoise(image, rng=rng)
        return noise if self.variance is None else noise.withVariance(self.variance)

    def add(self, image, rng):
        """Add noise to a `galsim.Image` in place."""
        image.addNoise(self._galsim_noise(rng, image.scale))

    def __repr__(self):
        kind = "'cosmos'" if isinstance(self.source, str) else f"image{self.source.shape}"
        return f"CorrelatedNoise({kind}, variance={self.variance})"


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
        (or a FITS path to one), or a list of those from which each galaxy
        draws one at random (PSF variation).
    noise : `GaussianNoise`, `CCDNoise`, `CorrelatedNoise` or None
        Background noise model.
    stamp_size : int
        Cutout size in pixels.
    oversampling : int, optional
        Sub-pixels per pixel of the fast renderer.

    Examples
    --------
    >>> from astromorphnet.simulation import SurveyConfig
    >>> survey = SurveyConfig.from_preset("CANDELS_F160W", stamp_size=64)
    >>> survey.pixel_scale, survey.zeropoint, survey.stamp_size
    (0.06, 25.94, 64)
    """

    def __init__(self, name, *, pixel_scale, zeropoint, psf, noise, stamp_size=64,
                 oversampling=3):
        if not pixel_scale > 0:
            raise ValueError(f"pixel_scale must be positive; got {pixel_scale}")
        if not (int(stamp_size) == stamp_size and stamp_size >= 8):
            raise ValueError(f"stamp_size must be an integer >= 8; got {stamp_size}")
        self.name = name
        self.pixel_scale = float(pixel_scale)
        self.zeropoint = float(zeropoint)
        self.psf = psf
        self.noise = noise
        self.stamp_size = int(stamp_size)
        self.oversampling = int(oversampling)

    @classmethod
    def from_preset(cls, name, **changes):
        """A copy of a preset in `PRESETS`, with ``changes`` applied.

        Parameters
        ----------
        name : str
            ``"CANDELS_F160W"`` or ``"GROUND_R"``.
        **changes
            Attributes to override (e.g. ``stamp_size=64``).

        Returns
        -------
        survey : SurveyConfig

        Raises
        ------
        ValueError
            If the preset is unknown.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown survey preset {name!r}; choose among {sorted(PRESETS)}")
        params = {**copy.deepcopy(PRESETS[name]), **changes}
        return cls(params.pop("name", name), **params)

    def psf_objects(self):
        """The PSF(s) as a list of `galsim.GSObject`."""
        import galsim

        psfs = self.psf if isinstance(self.psf, (list, tuple)) else [self.psf]
        out = []
        for psf in psfs:
            if isinstance(psf, _LazyPSF):
                psf = psf.factory()
            if isinstance(psf, galsim.GSObject):
                out.append(psf)
                continue
            if isinstance(psf, str):
                from astropy.io import fits

                psf = fits.getdata(psf)
            array = np.asarray(psf, dtype=float)
            if array.ndim != 2:
                raise ValueError(f"a PSF image must be 2-D; got shape {array.shape}")
            out.append(galsim.InterpolatedImage(galsim.Image(array / array.sum(),
                                                             scale=self.pixel_scale)))
        return out

    def describe(self):
        """A JSON-friendly summary (stored with simulated sets)."""
        return {"name": self.name, "pixel_scale": self.pixel_scale,
                "zeropoint": self.zeropoint, "stamp_size": self.stamp_size,
                "psf": repr(self.psf), "noise": repr(self.noise),
                "oversampling": self.oversampling}

    def __repr__(self):
        return (f"SurveyConfig({self.name!r}, pixel_scale={self.pixel_scale}, "
                f"zeropoint={self.zeropoint}, stamp_size={self.stamp_size}, "
                f"psf={self.psf!r}, noise={self.noise!r})")


def _hst_f160w_psf(jitter=0.12):
    import galsim

    # Obscured 2.4 m Airy at 1.54 µm plus charge diffusion/jitter: ~0.18" FWHM.
    # A looser folding threshold draws it in 0.1 s instead of 5 s, same pixels
    # to 1e-4: the Airy's far wings otherwise force a huge FFT.
    return galsim.Convolve(galsim.Airy(lam=1536.9, diam=2.4, obscuration=0.33,
                                       scale_unit=galsim.arcsec),
                           galsim.Gaussian(fwhm=jitter),
                           gsparams=galsim.GSParams(folding_threshold=2e-2))


class _LazyPSF:
    """Builds a GalSim PSF on first use, so presets import without GalSim."""

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
    # the PSF varies and is broader than the training model's, and the noise
    # is correlated (drizzled HST) and 1.5x deeper-than-modelled in sigma.
    "CANDELS_F160W_REAL_LIKE": dict(
        pixel_scale=0.06, zeropoint=25.94, stamp_size=128,
        psf=[_LazyPSF(functools.partial(_hst_f160w_psf, jitter),
                      f"HST F160W Airy * Gaussian({jitter}\")") for jitter in (0.12, 0.18, 0.24)],
        noise=CorrelatedNoise("cosmos", variance=0.012**2)),
    "GROUND_R": dict(
        pixel_scale=0.2, zeropoint=27.0, stamp_size=64,
        psf=_LazyPSF(lambda: __import__("galsim").Kolmogorov(fwhm=0.7),
                     "Kolmogorov(0.7\" FWHM) seeing"),
        # Dark-sky r band, ~21 mag/arcsec², 10 minutes.
        noise=CCDNoise(sky_level=10.0, exposure_time=600.0, read_noise=5.0, gain=1.0)),
}

"""Fast PSF-convolved Sérsic rendering on an oversampled pixel grid.

GalSim draws a Sérsic⊗PSF by FFT on a grid sized by the *untruncated*
profile's extent: thousands of pixels a side for n ≳ 4, 0.1–10 s a galaxy.
Only the stamp is ever kept, so here the profile is evaluated analytically on
the stamp (plus a margin) oversampled ``k``×, with the unresolved central
cusp restored from the exact enclosed-light formula, convolved with the
PSF's core drawn by GalSim at the oversampled scale, binned back to pixels,
and convolved with the PSF's wings at the pixel scale.  The result agrees
with GalSim's exact rendering to well under 1 % in flux and half-light
radius (see ``tests/test_simulation.py``) and the labels are untouched:
nothing is truncated inside the stamp.
"""

import functools

import numpy as np
from scipy import fft
from scipy.special import gammainc, gammaincinv

__all__ = ["PSFKernel", "sersic_b", "render_sersic", "sersic_flux_within"]


def sersic_b(n):
    """The Sérsic ``b_n``, which puts half the light within ``r_eff``.

    Parameters
    ----------
    n : float or array-like
        Sérsic index.

    Returns
    -------
    b : float or `~numpy.ndarray`
        The solution of ``P(2n, b) = 1/2`` (regularised lower incomplete gamma).

    Examples
    --------
    >>> from astromorphnet.simulation import sersic_b
    >>> round(float(sersic_b(1.0)), 4), round(float(sersic_b(4.0)), 4)
    (1.6783, 7.6692)
    """
    return gammaincinv(2.0 * n, 0.5)


def sersic_flux_within(radius, flux, r_eff, n):
    """Light of a Sérsic profile inside an elliptical radius.

    Parameters
    ----------
    radius : float or array-like
        Elliptical (semi-major-axis) radius, in the unit of ``r_eff``.
    flux : float
        Total (untruncated) flux.
    r_eff : float
        Half-light radius along the semi-major axis.
    n : float
        Sérsic index.

    Returns
    -------
    enclosed : float or `~numpy.ndarray`
        The flux inside ``radius``.

    Examples
    --------
    >>> from astromorphnet.simulation import sersic_flux_within
    >>> round(float(sersic_flux_within(3.0, flux=2.0, r_eff=3.0, n=4.0)), 6)
    1.0
    """
    return flux * gammainc(2.0 * n, sersic_b(n) * (radius / r_eff) ** (1.0 / n))


class PSFKernel:
    """A PSF split into an oversampled core and pixel-scale wings.

    The core (the central ``(2 core_radius + 1)`` pixels square) is drawn at
    the oversampled scale and convolved before pixel binning, where the PSF
    varies on sub-pixel scales; the wings outside it are smooth, so they are
    drawn at the pixel scale and convolved after binning, out to the stamp
    size.  Neither part is renormalised: light scattered beyond the stamp is
    lost as in GalSim's exact drawing, however extended the wings (an Airy
    pattern's reach several arcsec).

    Parameters
    ----------
    psf : `galsim.GSObject`
        The PSF profile (without the pixel response, which the binning adds).
    pixel_scale : float
        Arcsec per (stamp) pixel.
    oversampling : int
        Sub-pixels per pixel along each axis.
    core_radius : int, optional
        Half-width of the core in pixels.

    Examples
    --------
    >>> import galsim
    >>> from astromorphnet.simulation import PSFKernel
    >>> kernel = PSFKernel(galsim.Moffat(beta=3.0, fwhm=0.18), pixel_scale=0.06)
    >>> kernel.array.shape  # (2 * 6 + 1) pixels * 3 sub-pixels
    (39, 39)
    >>> round(kernel.core_flux + float(kernel.wings(32).sum()), 3)  # light within 65 pixels
    1.0
    """

    def __init__(self, psf, pixel_scale, oversampling=3, core_radius=6):
        self.psf, self.pixel_scale = psf, pixel_scale
        self.oversampling = oversampling
        self.radius = int(core_radius)
        size = (2 * self.radius + 1) * oversampling  # odd: centred on a sub-pixel
        core = psf.drawImage(nx=size, ny=size, scale=pixel_scale / oversampling,
                             method="no_pixel").array
        # Point samples misjudge the light of a PSF narrower than a sub-pixel:
        # scale the core to the exact (pixel-integrated) light in its square.
        self.core_flux = self._enclosed(self.radius)
        self.array = (core * self.core_flux / core.sum()).astype(np.float32)
        self._wings = {}
        self._spectra = {}

    def _enclosed(self, radius):
        """Exact PSF light in the ``(2 radius + 1)``-pixel square."""
        size = 2 * radius + 1
        return float(self.psf.drawImage(nx=size, ny=size, scale=self.pixel_scale,
                                        method="auto").array.sum())

    def wings(self, radius):
        """The PSF outside the core, at the pixel scale (cached per ``radius``).

        Parameters
        ----------
        radius : int
            Half-width of the kernel in pixels (at least the core's).

        Returns
        -------
        wings : `~numpy.ndarray`
            The float32 ``(2 radius + 1, 2 radius + 1)`` kernel, zero over the core,
            holding the exact PSF light between the core and the kernel edge.

        Examples
        --------
        >>> import galsim
        >>> from astromorphnet.simulation import PSFKernel
        >>> kernel = PSFKernel(galsim.Moffat(beta=3.0, fwhm=0.18), pixel_scale=0.06)
        >>> wings = kernel.wings(10)
        >>> wings.shape, float(wings[10, 10])
        ((21, 21), 0.0)
        """
        if radius not in self._wings:
            size = 2 * radius + 1
            wing = self.psf.drawImage(nx=size, ny=size, scale=self.pixel_scale,
                                      method="no_pixel").array
            wing[radius - self.radius:radius + self.radius + 1,
                 radius - self.radius:radius + self.radius + 1] = 0.0
            light = self._enclosed(radius) - self.core_flux
            total = wing.sum()
            scale = light / total if total > 0 else 0.0
            self._wings[radius] = (wing * scale).astype(np.float32)
        return self._wings[radius]

    def convolve(self, image, radius=None):
        """``fftconvolve(image, kernel, mode="same")`` with the kernel's transform cached.

        Every galaxy of a survey is convolved with the same two kernels, so
        their Fourier transforms are computed once per image shape.

        Parameters
        ----------
        image : `~numpy.ndarray`
            At the oversampled scale for the core, at the pixel scale for
            the wings.
        radius : int, optional
            Convolve with ``wings(radius)``; default: with the core (``array``).

        Returns
        -------
        convolved : `~numpy.ndarray`
            Of the shape and dtype of ``image``.
        """
        kernel = self.array if radius is None else self.wings(radius)
        full = [a + b - 1 for a, b in zip(image.shape, kernel.shape)]
        shape = tuple(fft.next_fast_len(d, real=True) for d in full)
        key = (radius, shape)
        if key not in self._spectra:
            self._spectra[key] = fft.rfft2(kernel, shape)
        out = fft.irfft2(fft.rfft2(image, shape) * self._spectra[key], shape)
        # The "same" part of the full convolution, as scipy.signal.fftconvolve's.
        y0, x0 = ((f - n) // 2 for f, n in zip(full, image.shape))
        return out[y0:y0 + image.shape[0], x0:x0 + image.shape[1]].astype(image.dtype, copy=False)


def render_sersic(shape, flux, r_eff, n, q, pa_deg, kernel, *, dx=0.0, dy=0.0, points=None):
    """Draw a PSF-convolved elliptical Sérsic galaxy into a stamp.

    Parameters
    ----------
    shape : tuple of int
        Stamp ``(ny, nx)``.
    flux : float
        Total (untruncated) flux.
    r_eff : float
        Half-light radius along the semi-major axis, in pixels.
    n : float
        Sérsic index.
    q : float
        Axis ratio b/a.
    pa_deg : float
        Position angle of the major axis from +x, counter-clockwise, degrees.
    kernel : `PSFKernel`
        The PSF.
    dx, dy : float, optional
        Centre offset from the stamp centre (GalSim's convention), pixels.
    points : tuple of `~numpy.ndarray`, optional
        ``(x, y, flux)`` of extra point sources (e.g. star-forming knots),
        offsets in pixels from the galaxy centre, convolved with the PSF too.

    Returns
    -------
    image : `~numpy.ndarray`
        The float64 stamp; light falling outside it is lost, as in a real cutout.

    Examples
    --------
    >>> import galsim
    >>> from astromorphnet.simulation import PSFKernel, render_sersic
    >>> kernel = PSFKernel(galsim.Moffat(beta=3.0, fwhm=0.18), pixel_scale=0.06)
    >>> image = render_sersic((64, 64), 1.0, r_eff=4.0, n=1.0, q=0.6, pa_deg=30.0,
    ...                       kernel=kernel)
    >>> image.shape, round(float(image.sum()), 2)
    ((64, 64), 1.0)
    """
    k = kernel.oversampling
    pad = kernel.radius
    ny, nx = shape[0] + 2 * pad, shape[1] + 2 * pad
    # Sub-pixel centres relative to the galaxy centre, in pixels.
    y = (np.arange(ny * k) + 0.5) / k - ny / 2 - dy
    x = (np.arange(nx * k) + 0.5) / k - nx / 2 - dx
    profile = _SersicProfile(flux, r_eff, n, q, pa_deg)
    sub = profile(x.astype(np.float32)[np.newaxis, :], y.astype(np.float32)[:, np.newaxis])
    sub /= k**2
    _refine_centre(sub, x, y, k, profile)
    for px, py, pflux in zip(*(points or ((), (), ()))):
        _deposit(sub, pflux, (px - x[0]) * k - 0.5, (py - y[0]) * k - 0.5)
    image = _bin(kernel.convolve(sub), k)
    image += kernel.convolve(_bin(sub, k), radius=max(shape))
    return image[pad:pad + shape[0], pad:pad + shape[1]].astype(np.float64)


def _bin(array, k):
    """Sum ``k``×``k`` sub-pixels into pixels."""
    # Adding k strided slices is ~8x faster than numpy's sum over a strided axis.
    ny, nx = array.shape
    columns = array.reshape(ny, nx // k, k)
    columns = functools.reduce(np.add, (columns[..., j] for j in range(k)))
    rows = columns.reshape(ny // k, k, nx // k)
    return functools.reduce(np.add, (rows[:, j] for j in range(k)))


class _SersicProfile:
    """Surface brightness of an elliptical Sérsic profile at (x, y) pixels."""

    def __init__(self, flux, r_eff, n, q, pa_deg):
        from scipy.special import gamma

        self.flux, self.r_eff, self.n, self.q = flux, r_eff, n, q
        self.cos, self.sin = np.cos(np.deg2rad(pa_deg)), np.sin(np.deg2rad(pa_deg))
        self.b = sersic_b(n)
        self.intensity = flux / (2 * np.pi * q * r_eff**2 * n * np.exp(self.b)
                                 * gamma(2 * n) / self.b ** (2 * n))

    def radius2(self, x, y):
        """Squared elliptical radius (in the dtype of ``x``, ``y``)."""
        dtype = np.result_type(x, y)
        cos, sin = dtype.type(self.cos), dtype.type(self.sin)
        major = x * cos + y * sin
        minor = (y * cos - x * sin) / dtype.type(self.q)
        return major * major + minor * minor

    def radius(self, x, y):
        return np.sqrt(self.radius2(x, y))

    def __call__(self, x, y):
        # (r/r_eff)^(1/n) through one log and exp of r²: the grid is evaluated
        # in float32, ~5× faster than float64 powers and still to ~1e-6.
        r2 = self.radius2(x, y)
        t = r2.dtype.type
        with np.errstate(divide="ignore"):  # log(0) at the centre gives exp(-inf) = 0
            power = np.exp(np.log(r2) * t(0.5 / self.n) - t(np.log(self.r_eff) / self.n))
        return t(self.intensity) * np.exp(t(-self.b) * (power - t(1.0)))


def _refine_centre(sub, x, y, k, profile, half_width=2.0, s=16):
    """Resample the central sub-pixels finely and restore the unresolved cusp.

    Point sampling misses light where the profile is steep: near the centre
    of high-n galaxies, a few per cent of the light lies within 0.01 r_eff.
    Sub-pixels within ``half_width`` pixels of the centre are averaged over
    ``s``×``s`` points, and the light inside the innermost fine sample is set
    to its exact value from the enclosed-light formula.
    """
    cx, cy = -x[0] * k, -y[0] * k  # fractional sub-pixel index of the centre
    h = half_width * k
    x0, x1 = max(0, int(cx - h)), min(len(x), int(cx + h) + 2)
    y0, y1 = max(0, int(cy - h)), min(len(y), int(cy + h) + 2)
    if x0 >= x1 or y0 >= y1:
        return  # centre far off the stamp
    offsets = ((np.arange(s) + 0.5) / s - 0.5) / k
    fx = (x[x0:x1, np.newaxis] + offsets).reshape(1, 1, -1, s)
    fy = (y[y0:y1, np.newaxis] + offsets).reshape(-1, s, 1, 1)
    fine = profile(fx, fy) / (k * s) ** 2
    core = 0.75 / (k * s)
    inside = profile.radius(fx, fy) < core
    deficit = sersic_flux_within(core, profile.flux, profile.r_eff, profile.n) - fine[
        np.broadcast_to(inside, fine.shape)].sum()
    sub[y0:y1, x0:x1] = fine.sum(axis=(1, 3))
    _deposit(sub, deficit, cx - 0.5, cy - 0.5)


def _deposit(sub, amount, fx, fy):
    """Add ``amount`` at fractional sub-pixel index ``(fx, fy)``, bilinearly."""
    ix, iy = int(np.floor(fx)), int(np.floor(fy))
    wx, wy = fx - ix, fy - iy
    for jy, wgt_y in ((iy, 1 - wy), (iy + 1, wy)):
        for jx, wgt_x in ((ix, 1 - wx), (ix + 1, wx)):
            if 0 <= jy < sub.shape[0] and 0 <= jx < sub.shape[1]:
                sub[jy, jx] += amount * wgt_x * wgt_y

"""One galaxy's PSF-convolved single-Sérsic least-squares fit.

The fit variables are well conditioned and smooth everywhere:

``log F``
    total flux (the model is linear in it: its Jacobian column is exact);
``log r_c``
    the circularised half-light radius ``r_eff * sqrt(q)``;
``log n``
    the Sérsic index;
``c1, c2``
    the logarithmic shape vector ``|c| (cos 2 pa, sin 2 pa)`` with
    ``q = exp(-2 |c|)``: unlike ``(q, pa)`` it has no degenerate angle for
    round galaxies, and with ``r_c`` the profile depends smoothly on it;
``dx, dy``
    the centre's offset from the stamp centre, pixels;
``sky``
    a constant background, when fitted.

The Jacobian is computed column by column: exact for flux and sky, forward
differences of the renderer for the six others (one render each), so an
iteration costs seven renders.

Errors come from the same Jacobian at the solution (see `fit_errors`): the
covariance of the fit variables, ``inv(J^T J)`` of the residuals weighted
by 1/σ, scaled by χ²_ν where that exceeds 1, and carried to the catalog
parameters by the delta method.
"""

import numpy as np
from astropy.stats import sigma_clipped_stats
from scipy.optimize import least_squares
from scipy.stats import chi2, f, norm

from ..simulation._render import render_sersic

__all__ = ["AT_BOUND", "BAD_CHI2", "BAD_DATA", "CHI2_SIGNIFICANCE", "ERROR_COLUMNS",
           "EXTRAPOLATED", "FTOL", "LOW_SN", "MAX_DISTANCE_TO_MINIMUM", "MAX_NFEV",
           "MAX_RESIDUAL_POWER", "MIN_BACKGROUND_PIXELS", "MIN_FLUX_FRACTION", "MIN_PIXELS_PER_PARAMETER", "MIN_SN",
           "NOT_CONVERGED", "RESULT_COLUMNS", "XTOL", "Limits", "chi2_nu_limit", "fit_errors",
           "fit_one"]

#: Finite-difference steps of the rendered variables (log r_c, log n, c1, c2, dx, dy).
#: The renderer works in float32: steps much smaller would difference round-off.
_STEPS = np.array([2e-3, 2e-3, 2e-3, 2e-3, 5e-3, 5e-3])
#: ``least_squares`` settings: function evaluations (each Jacobian costs six
#: renders more) and relative tolerances on the cost and the variables.
MAX_NFEV = 60
FTOL = 1e-6
XTOL = 1e-6
#: A cutout needs this many unmasked pixels per fitted parameter.
MIN_PIXELS_PER_PARAMETER = 3
#: Background pixels needed to measure the noise away from the galaxy.
MIN_BACKGROUND_PIXELS = 100

#: A fitted model whose matched-filter S/N is below this is no detection (flag ``LOW_SN``):
#: the usual 5σ detection limit, which the best of the many models a fit can lay on pure
#: noise (free centre, size and shape) reaches by chance only rarely.
MIN_SN = 5.0
#: A reduced χ² more improbable than this many Gaussian sigmas (one-sided) under a
#: correct model and noise flags the fit ``BAD_CHI2`` (see `chi2_nu_limit`) ...
CHI2_SIGNIFICANCE = 5.0
#: ... and only when the residuals' power beyond the noise, (χ² - ν) / S/N², exceeds
#: this fraction of the model's: a real galaxy is no perfect Sérsic, and at high S/N
#: its spiral arms or knots are significant while its single-Sérsic parameters stay
#: good; missing a tenth of the signal's power (residuals' rms ~30 % of the
#: model's) is a neighbour, a wrong sign or a wrong model.
MAX_RESIDUAL_POWER = 0.1
#: A fit stopped (``xtol``: its trust region shrank to nothing) where a Gauss-Newton
#: step would still lower χ² by more than this, in units of χ²_ν, is restarted once,
#: then flagged ``NOT_CONVERGED``: it lies over a tenth of its errors from the
#: minimum.  Converged fits of noisy simulations measured 1e-6 (median) to 4e-5
#: (90th percentile); two stalled ones out of 200, 500 and 1700.
MAX_DISTANCE_TO_MINIMUM = 0.01
#: A model with less than this fraction of its light on the cutout is flagged
#: ``EXTRAPOLATED``: its half-light isophote lies beyond the data.
MIN_FLUX_FRACTION = 0.5
#: Asymptotic efficiency of the MAD standard deviation relative to the sample one
#: for Gaussian noise: a MAD over N pixels is worth ~0.37 N degrees of freedom.
_MAD_EFFICIENCY = 0.37
#: Pixels are quantised when more than this fraction share one value: Gaussian noise
#: of sigma in units of the quantum puts ~1 / (2.5 sigma) of them at the mode, so
#: this means a noise under ~4 quanta (continuous data repeat no value).
_QUANTISED_FRACTION = 0.1

# Fit-flag bits (mirrors FitFlag, kept here to avoid an import cycle).
NOT_CONVERGED, AT_BOUND, BAD_DATA, LOW_SN, BAD_CHI2, EXTRAPOLATED = 1, 2, 4, 8, 16, 32

#: 1σ errors returned by `fit_errors`, in order.
ERROR_COLUMNS = ("mag_err", "r_eff_err", "sersic_n_err", "ellipticity_err", "pa_err",
                 "x_offset_err", "y_offset_err")
#: Columns returned by `fit_one`, in order.
RESULT_COLUMNS = ("mag", "r_eff", "sersic_n", "ellipticity", "pa", "x_offset", "y_offset",
                  "sky", *ERROR_COLUMNS, "sn", "chi2_nu", "fit_flag")
#: Flags whose fits have no covariance: the minimum was not reached, or a bound
#: (clipped or active) truncates the error distribution.
_NO_COVARIANCE = NOT_CONVERGED | AT_BOUND


class Limits:
    """Bounds of one cutout's fit, in catalog units.

    Ellipticity and semi-major ``r_eff`` bounds are not boxes in the fit
    variables: the model clips them (the fit then sees a flat direction, and
    the result is flagged ``AT_BOUND``).
    """

    def __init__(self, r_eff, sersic_n, ellipticity, x_offset, y_offset):
        self.r_eff, self.sersic_n = r_eff, sersic_n
        self.x_offset, self.y_offset = x_offset, y_offset
        # |c| = -ln(q) / 2
        self.m = (-0.5 * np.log1p(-ellipticity[0]), -0.5 * np.log1p(-ellipticity[1]))

    def box(self, fit_sky):
        """Lower and upper bounds of the fit variables."""
        m_hi = self.m[1]
        lower = [-np.inf, np.log(self.r_eff[0]) - m_hi, np.log(self.sersic_n[0]), -m_hi, -m_hi,
                 self.x_offset[0], self.y_offset[0]]
        upper = [np.inf, np.log(self.r_eff[1]), np.log(self.sersic_n[1]), m_hi, m_hi,
                 self.x_offset[1], self.y_offset[1]]
        if fit_sky:
            lower.append(-np.inf)
            upper.append(np.inf)
        return np.array(lower), np.array(upper)


class _Problem:
    """Weighted residuals and Jacobian over the unmasked pixels of one cutout."""

    def __init__(self, shape, kernel, data, weight, good, limits, fit_sky):
        self.shape, self.kernel, self.limits, self.fit_sky = shape, kernel, limits, fit_sky
        self.good = good
        self.data = data[good]
        self.weight = weight[good]
        self._cache = (None, None)

    def parameters(self, x):
        """``(r_eff, n, q, pa, dx, dy)`` and whether a clipped bound is active."""
        m_raw = np.hypot(x[3], x[4])
        m = min(max(m_raw, self.limits.m[0]), self.limits.m[1])
        r_raw = np.exp(x[1] + m)  # semi-major = r_c / sqrt(q)
        r_eff = min(max(r_raw, self.limits.r_eff[0]), self.limits.r_eff[1])
        pa = 0.5 * np.degrees(np.arctan2(x[4], x[3])) % 180.0
        # Exactly on an r_eff bound counts too: a start clipped onto it stays there,
        # the direction beyond being flat.
        clipped = m != m_raw or r_eff != r_raw or r_eff in self.limits.r_eff
        return (r_eff, np.exp(x[2]), np.exp(-2.0 * m), pa, x[5], x[6]), clipped

    def unit_model(self, x):
        """The unit-flux model at the unmasked pixels (the last one is cached)."""
        key = x[1:7].tobytes()
        if self._cache[0] != key:
            r_eff, n, q, pa, dx, dy = self.parameters(x)[0]
            image = render_sersic(self.shape, 1.0, r_eff, n, q, pa, self.kernel, dx=dx, dy=dy)
            self._cache = (key, image[self.good])
        return self._cache[1]

    def residuals(self, x):
        sky = x[7] if self.fit_sky else 0.0
        return (self.data - np.exp(x[0]) * self.unit_model(x) - sky) * self.weight

    def jacobian(self, x, upper):
        flux = np.exp(x[0])
        base = self.unit_model(x)
        columns = [-flux * base * self.weight]
        for j, step in enumerate(_STEPS, start=1):
            shifted = x.copy()
            step = step if x[j] + step <= upper[j] else -step
            shifted[j] += step
            r_eff, n, q, pa, dx, dy = self.parameters(shifted)[0]
            image = render_sersic(self.shape, 1.0, r_eff, n, q, pa, self.kernel, dx=dx, dy=dy)
            columns.append(-flux * (image[self.good] - base) / step * self.weight)
        if self.fit_sky:
            columns.append(-self.weight)
        return np.column_stack(columns)


def fit_one(data, mask, std, kernel, psf_hlr, limits, fit_sky, zeropoint, initial):
    """Fit one cutout; return the values of `RESULT_COLUMNS`.

    ``initial`` maps ``flux``, ``r_eff``, ``sersic_n``, ``ellipticity``,
    ``pa``, ``x_offset``, ``y_offset`` to starting values (NaN: from moments).
    """
    n_params = 7 + bool(fit_sky)
    data = np.asarray(data, np.float64)
    good = ~np.asarray(mask, bool) & np.isfinite(data)
    std = None if std is None else np.asarray(std, np.float64)
    # In a set where some cutouts have an uncertainty, the others' is NaN: none.
    if std is not None and not np.isfinite(std).any():
        std = None
    if std is not None:
        with np.errstate(invalid="ignore"):
            good &= np.isfinite(std) & (std > 0)
    nan_row = [np.nan] * (len(RESULT_COLUMNS) - 1)
    # Equal pixels (a blank or constant cutout) hold no profile to fit.
    if good.sum() < MIN_PIXELS_PER_PARAMETER * n_params or np.ptp(data[good]) == 0:
        return nan_row + [BAD_DATA]
    stdfunc = _stdfunc(data[good])
    guess, sky0, radius = _moments(data, good, _clipped_sigma(data[good], stdfunc), psf_hlr,
                                   limits, fit_sky)
    uniform = std is None
    if uniform:  # no uncertainty: the value does not matter to the fit, only to chi2_nu
        sigma = _nonzero(_clipped_sigma(data[good], stdfunc), data[good])
        weight = np.full(data.shape, 1.0 / sigma)
    else:
        weight = 1.0 / np.where(good, std, 1.0)
    x0 = _starting_point(guess, initial, limits)
    problem = _Problem(data.shape, kernel, data, weight, good, limits, fit_sky)
    lower, upper = limits.box(fit_sky)
    if fit_sky:
        x0 = np.append(x0, sky0)
    x0 = np.clip(x0, lower, upper)
    dof = max(good.sum() - n_params, 1)

    def solve(start):
        result = least_squares(problem.residuals, start,
                               jac=lambda x: problem.jacobian(x, upper), bounds=(lower, upper),
                               method="trf", x_scale="jac", ftol=FTOL, xtol=XTOL, gtol=1e-10,
                               max_nfev=MAX_NFEV)
        at_bound = problem.parameters(result.x)[1] or np.any(result.active_mask[1:7] != 0)
        # At a bound the gradient legitimately points beyond it.
        far = not at_bound and _distance_to_minimum(result, dof) > MAX_DISTANCE_TO_MINIMUM
        return result, at_bound, far

    result, at_bound, far = solve(x0)
    if far:  # the trust region collapsed short of the minimum: a fresh one
        result, at_bound, far = solve(result.x)
    x = result.x
    r_eff, n, q, pa, dx, dy = problem.parameters(x)[0]
    flag = 0
    if result.status <= 0 or far:
        flag |= NOT_CONVERGED
    if at_bound:
        flag |= AT_BOUND
    chi2_nu = 2.0 * result.cost / dof
    model = np.exp(x[0]) * problem.unit_model(x)
    jac = result.jac
    if uniform:
        noise, n_noise = _noise(data, good, radius, result.fun * sigma, stdfunc)
        chi2_nu *= (sigma / noise) ** 2
        sn = np.sqrt(np.sum(model**2)) / noise
        # The residuals were weighted by 1/sigma, a placeholder: weigh by the noise.
        jac = jac * (sigma / noise)
    else:
        n_noise = None
        sn = np.sqrt(np.sum((model * problem.weight) ** 2))
    if not sn >= MIN_SN:
        flag |= LOW_SN
    excess = (chi2_nu - 1.0) * dof / sn**2 if sn > 0 else np.inf
    if chi2_nu > chi2_nu_limit(dof, n_noise) and excess > MAX_RESIDUAL_POWER:
        flag |= BAD_CHI2
    on_stamp = render_sersic(data.shape, 1.0, r_eff, n, q, pa, kernel, dx=dx, dy=dy).sum()
    if on_stamp < MIN_FLUX_FRACTION:
        flag |= EXTRAPOLATED
    mag = zeropoint - 2.5 * x[0] / np.log(10.0)
    sky = x[7] if fit_sky else np.nan
    errors = [np.nan] * len(ERROR_COLUMNS) if flag & _NO_COVARIANCE else fit_errors(
        jac, x, chi2_nu)
    return [mag, r_eff, n, 1.0 - q, pa, dx, dy, sky, *errors, sn, chi2_nu, flag]


def fit_errors(jac, x, chi2_nu):
    """1σ errors of the catalog parameters from the fit's weighted Jacobian.

    The covariance of the fit variables is ``inv(J^T J)``, ``J`` being the
    Jacobian of the residuals weighted by 1/σ (so no further noise factor),
    times χ²_ν when χ²_ν > 1.  Scaling only up follows the Particle Data
    Group's scale factor (Birge ratio): a χ²_ν above 1 means residuals
    beyond the noise (model mismatch, an uncertainty map too small) that
    the errors must absorb, while one below 1 is, for a correct noise, the
    statistic's own scatter (±(2/ν)^½), and shrinking the errors on it would
    make them over-confident.  GALFIT's documentation that we could consult
    states no rule; ``scipy.optimize.curve_fit`` (``absolute_sigma=False``)
    and lmfit scale both ways.  The covariance is carried to
    ``mag``, ``r_eff``, ``sersic_n``, ``ellipticity``, ``pa`` [deg],
    ``x_offset`` and ``y_offset`` by the delta method (first-order
    propagation through the analytic derivatives of the map from the fit
    variables).

    Parameters
    ----------
    jac : `~numpy.ndarray`
        ``(pixels, variables)`` Jacobian of the 1/σ-weighted residuals at
        the solution, in the fit variables of this module.
    x : `~numpy.ndarray`
        The fit variables at the solution.
    chi2_nu : float
        The fit's reduced χ².

    Returns
    -------
    errors : `~numpy.ndarray`
        The errors of `ERROR_COLUMNS`; all NaN where ``J^T J`` is singular
        (a flat direction: the data do not constrain some combination of the
        variables); NaN for ``r_eff``, ``ellipticity`` and ``pa`` of an
        exactly round model, where they are not differentiable.
    """
    nan = np.full(len(ERROR_COLUMNS), np.nan)
    # Columns scaled to unit norm: the rank test then sees the variables'
    # degeneracy, not their units.
    norms = np.linalg.norm(jac, axis=0)
    if not (np.all(np.isfinite(jac)) and np.all(norms > 0) and np.isfinite(chi2_nu)):
        return nan
    _, s, vt = np.linalg.svd(jac / norms, full_matrices=False)
    if s[-1] <= s[0] * max(jac.shape) * np.finfo(float).eps:  # numpy's matrix_rank test
        return nan
    cov = (vt.T / s**2) @ vt / np.outer(norms, norms) * max(chi2_nu, 1.0)
    gradient = _catalog_gradient(x, jac.shape[1])
    return np.sqrt(np.einsum("ij,jk,ik->i", gradient, cov, gradient))


def _catalog_gradient(x, n_params):
    """Derivatives of the catalog parameters of `ERROR_COLUMNS` by the fit variables."""
    m = np.hypot(x[3], x[4])
    with np.errstate(invalid="ignore", divide="ignore"):
        u1, u2 = x[3] / m, x[4] / m  # NaN for a round model: no direction
        r_eff = np.exp(x[1] + m)
        de_dm = 2.0 * np.exp(-2.0 * m)
        dpa = 0.5 * np.degrees(1.0) / m
    gradient = np.zeros((len(ERROR_COLUMNS), n_params))
    gradient[0, 0] = -2.5 / np.log(10.0)  # mag = zeropoint - 2.5 log10(F)
    gradient[1, 1], gradient[1, 3], gradient[1, 4] = r_eff, r_eff * u1, r_eff * u2
    gradient[2, 2] = np.exp(x[2])
    gradient[3, 3], gradient[3, 4] = de_dm * u1, de_dm * u2  # ellipticity = 1 - exp(-2m)
    gradient[4, 3], gradient[4, 4] = -dpa * u2, dpa * u1  # pa = atan2(c2, c1) / 2
    gradient[5, 5] = gradient[6, 6] = 1.0
    return gradient


def _distance_to_minimum(result, dof):
    """How far a ``least_squares`` result lies from the minimum, in units of its errors.

    MINUIT's estimated distance to the minimum: the χ² a Gauss-Newton step
    from the result would still gain, ``g^T inv(J^T J) g`` with
    ``g = J^T f``, relative to the residuals' χ²_ν, so that it does not
    depend on the weights' scale (noiseless data, a placeholder noise).
    """
    step = np.linalg.lstsq(result.jac, result.fun, rcond=None)[0]
    gain = (result.jac.T @ result.fun) @ step
    chi2_nu = 2.0 * result.cost / dof
    return gain / chi2_nu if chi2_nu > 0 else 0.0


def chi2_nu_limit(dof, n_noise=None):
    """The largest reduced χ² consistent with a correct model and noise.

    The one-sided `CHI2_SIGNIFICANCE` σ quantile of χ²_ν with ``dof``
    degrees of freedom when the noise is known (an uncertainty map), or of
    the F distribution when the noise is a MAD estimate over ``n_noise``
    pixels (worth ``0.37 n_noise`` degrees of freedom), whose own scatter
    widens the range.  Far above 1 for few pixels, near 1 for many.

    Parameters
    ----------
    dof : int
        Degrees of freedom of the fit (unmasked pixels less parameters).
    n_noise : int or None, optional
        Pixels of the noise estimate; None: the noise is known.

    Returns
    -------
    limit : float
        The limit on χ²_ν.
    """
    p = norm.sf(CHI2_SIGNIFICANCE)
    if n_noise is None:
        return chi2.isf(p, dof) / dof
    return f.isf(p, dof, max(_MAD_EFFICIENCY * n_noise, 1.0))


def _clipped_sigma(values, stdfunc="mad_std"):
    """3σ-clipped standard deviation, by default the MAD's (0 for noiseless pixels)."""
    return sigma_clipped_stats(values, sigma=3.0, maxiters=5, stdfunc=stdfunc)[2]


def _stdfunc(values):
    """The robust ``"mad_std"``, or ``"std"`` for quantised pixels.

    When more than `_QUANTISED_FRACTION` of the pixels share one value
    (counts of a faint sky: noise of a few quanta), the MAD takes only a few
    values, and is about 0 on the data as on the residuals once half of
    them are equal, however much the pixels vary.
    """
    counts = np.unique(values, return_counts=True)[1]
    return "std" if counts.max() > _QUANTISED_FRACTION * values.size else "mad_std"


def _nonzero(sigma, values):
    """``sigma``, or a tiny scale of ``values`` where it is 0 (noiseless pixels)."""
    if sigma > 0:
        return sigma
    peak = np.max(np.abs(values))
    return 1e-6 * peak if peak > 0 else 1.0


def _noise(data, good, radius, residuals, stdfunc):
    """Robust background noise of a cutout without uncertainty.

    Two estimates, each inflated by a different contamination: the clipped
    MAD of the unmasked pixels beyond 3 observed half-light radii (``radius``
    is the elliptical radius in those units; galaxy light in the wings) where
    at least `MIN_BACKGROUND_PIXELS` lie there, and the clipped MAD of the
    fit's residuals (model mismatch).  The smaller is the better.  Returns
    it and the number of pixels it was measured on.  ``stdfunc``: see `_stdfunc`.
    """
    sigma, n_pixels = _clipped_sigma(residuals, stdfunc), residuals.size
    background = good & (radius > 3.0)
    if background.sum() >= MIN_BACKGROUND_PIXELS:
        sigma_background = _clipped_sigma(data[background], stdfunc)
        if sigma_background < sigma:
            sigma, n_pixels = sigma_background, int(background.sum())
    return _nonzero(sigma, data[good]), n_pixels


def _moments(data, good, sigma, psf_hlr, limits, fit_sky):
    """Starting values from image moments, the sky level and an elliptical radius map.

    The map is in units of the observed (PSF-convolved) half-light radius.
    """
    ny, nx = data.shape
    y, x = np.mgrid[:ny, :nx]
    x = x - (nx - 1) / 2.0
    y = y - (ny - 1) / 2.0
    sky = sigma_clipped_stats(data[good], sigma=3.0, maxiters=5)[1] if fit_sky else 0.0
    d = np.where(good, data - sky, 0.0)
    weight = np.where(d > sigma, d, 0.0)
    if not weight.sum() > 0:
        weight = np.clip(d, 0.0, None)
    if not weight.sum() > 0:
        weight = good.astype(float)
    # Centroid within a Gaussian window about the stamp centre (neighbours count less).
    window = weight * np.exp(-0.5 * (x**2 + y**2) / (min(nx, ny) / 6.0) ** 2)
    total = window.sum() if window.sum() > 0 else 1.0
    cx = np.clip((window * x).sum() / total, *limits.x_offset)
    cy = np.clip((window * y).sum() / total, *limits.y_offset)
    x, y = x - cx, y - cy
    inside = weight * (x**2 + y**2 < (min(nx, ny) / 2.0) ** 2)
    total = inside.sum() if inside.sum() > 0 else 1.0
    mxx, myy, mxy = ((inside * a * b).sum() / total for a, b in ((x, x), (y, y), (x, y)))
    half_diff = np.hypot(0.5 * (mxx - myy), mxy)
    major, minor = 0.5 * (mxx + myy) + half_diff, 0.5 * (mxx + myy) - half_diff
    q = np.sqrt(max(minor, 1e-12) / major) if major > 0 else 1.0
    pa = 0.5 * np.degrees(np.arctan2(2 * mxy, mxx - myy))
    flux = d.sum()
    if not flux > 0:
        flux = max(weight.sum(), sigma * np.sqrt(good.sum()))
    # Half-light radius from the curve of growth in elliptical apertures,
    # less the PSF's in quadrature.
    cos, sin = np.cos(np.radians(pa)), np.sin(np.radians(pa))
    radius = np.hypot(x * cos + y * sin, (y * cos - x * sin) / q)
    order = np.argsort(radius[good])
    cumulative = np.cumsum(d[good][order])
    half = np.argmax(cumulative >= 0.5 * flux)  # the first crossing (noise wiggles)
    r_obs = max(radius[good][order][half], 0.5)
    r_eff = np.sqrt(max(r_obs**2 - psf_hlr**2, 0.25))
    guess = {"flux": flux, "r_eff": r_eff, "sersic_n": 2.0, "ellipticity": 1.0 - q, "pa": pa,
             "x_offset": cx, "y_offset": cy}
    return guess, sky, radius / r_obs


def _starting_point(guess, initial, limits):
    """Fit variables from the moments' ``guess``, overridden by finite ``initial`` values."""
    guess = dict(guess)
    for name, value in initial.items():
        if np.isfinite(value):
            guess[name] = value
    e_low, e_high = 1.0 - np.exp(-2.0 * np.array(limits.m))
    q = 1.0 - np.clip(guess["ellipticity"], e_low, e_high * 0.999)
    m = -0.5 * np.log(q)
    r_eff = np.clip(guess["r_eff"], *limits.r_eff)
    n = np.clip(guess["sersic_n"], *limits.sersic_n)
    angle = 2.0 * np.radians(guess["pa"])
    return np.array([np.log(max(guess["flux"], 1e-30)), np.log(r_eff) - m, np.log(n),
                     m * np.cos(angle), m * np.sin(angle), guess["x_offset"], guess["y_offset"]])

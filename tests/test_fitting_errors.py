"""Errors of fit_sersic: columns and units, coverage on noisy simulations, NaN where undefined."""

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import NDData, StdDevUncertainty
from astropy.table import QTable
from scipy.stats import norm

from astromorphnet.catalog import TARGETS
from astromorphnet.fitting import FitFlag, _model, fit_sersic
from astromorphnet.simulation import GaussianNoise, SurveyConfig, simulate_galaxies

pytest.importorskip("galsim")

SIZE = 32
NOISE = 0.008  # the CANDELS_F160W preset's
ERRORS = [f"{name}_err" for name in TARGETS]
#: Probability of a Gaussian within ±1σ.
P68 = norm.cdf(1) - norm.cdf(-1)
#: Galaxies of the coverage test: a coverage off by more than 0.099 fails (see below).
N_COVERAGE = 200
#: Well inside the fit's bounds and on the stamp: the errors are for unflagged fits.
RANGES = {"mag": (20.5, 23.0), "r_eff": (1.5, 4.0), "sersic_n": (0.6, 4.0),
          "ellipticity": (0.05, 0.6)}


def value(column):
    return np.asarray(getattr(column, "value", column), dtype=float)


def with_noise(images, sigma):
    return [NDData(image.astype(float), uncertainty=StdDevUncertainty(np.full(image.shape, sigma)))
            for image in images]


def survey_with_noise(sigma):
    return SurveyConfig.from_preset("CANDELS_F160W", stamp_size=SIZE, noise=GaussianNoise(sigma))


@pytest.fixture(scope="module")
def galaxy():
    """One mag-21.5 exponential-ish galaxy, drawn at the preset's noise and at a quarter of it."""
    truth = QTable({"mag": [21.5] * u.ABmag, "r_eff": [3.0] * u.pix, "sersic_n": [1.5],
                    "ellipticity": [0.3], "pa": [40.0] * u.deg, "dx": [0.2] * u.pix,
                    "dy": [-0.1] * u.pix})
    noisy, truth = simulate_galaxies(truth=truth, survey=survey_with_noise(NOISE),
                                     random_state=5)
    quiet, _ = simulate_galaxies(truth=truth, survey=survey_with_noise(NOISE / 4),
                                 random_state=5)
    return survey_with_noise(NOISE), truth, noisy[0].astype(float), quiet[0].astype(float)


def test_error_columns_and_units(galaxy):
    survey, _, image, _ = galaxy
    catalog = fit_sersic(with_noise([image], NOISE), survey)
    names = catalog.colnames
    assert names[names.index("flag") + 1:names.index("pa")] == ERRORS
    assert names[names.index("pa"):] == ["pa", "pa_err", "x_offset", "x_offset_err", "y_offset",
                                         "y_offset_err", "sn", "chi2_nu", "fit_flag"]
    # A magnitude error is a difference: u.mag, which does not convert to ABmag.
    assert catalog["mag_err"].unit == u.mag and catalog["mag"].unit == u.ABmag
    assert not catalog["mag_err"].unit.is_equivalent(u.ABmag)
    assert catalog["r_eff_err"].unit == u.pix
    assert catalog["sersic_n_err"].unit == u.dimensionless_unscaled
    assert catalog["ellipticity_err"].unit == u.dimensionless_unscaled
    assert catalog["pa_err"].unit == u.deg
    assert catalog["x_offset_err"].unit == catalog["y_offset_err"].unit == u.pix
    assert catalog["fit_flag"][0] == 0
    errors = [value(catalog[name])[0] for name in ERRORS + ["pa_err", "x_offset_err"]]
    assert np.all(np.isfinite(errors)) and np.all(np.array(errors) > 0)


def test_errors_scale_with_the_noise(galaxy):
    survey, _, noisy, quiet = galaxy
    catalog = fit_sersic(with_noise([noisy], NOISE) + with_noise([quiet], NOISE / 4), survey)
    for name in ERRORS + ["pa_err", "x_offset_err", "y_offset_err"]:
        ratio = value(catalog[name])[0] / value(catalog[name])[1]
        # Linear regime: the errors follow the noise, 4x.
        assert 3.5 < ratio < 4.5, (name, ratio)


def test_chi2_scaling_only_inflates(galaxy):
    """An uncertainty map too small is corrected by chi2_nu; one too large is kept (conservative)."""
    survey, _, image, _ = galaxy
    catalog = fit_sersic(with_noise([image], NOISE) + with_noise([image], NOISE / 2)
                         + with_noise([image], 2 * NOISE), survey)
    right, small, large = (np.array([value(catalog[name])[i] for name in ERRORS])
                           for i in range(3))
    chi2_nu = value(catalog["chi2_nu"])
    assert chi2_nu[1] == pytest.approx(4 * chi2_nu[0], rel=1e-3)
    assert chi2_nu[2] < 1.0
    np.testing.assert_allclose(small, right * np.sqrt(chi2_nu[0] / max(chi2_nu[0], 1.0)),
                               rtol=0.02)
    np.testing.assert_allclose(large, 2 * right * np.sqrt(1.0 / max(chi2_nu[0], 1.0)),
                               rtol=0.02)


def test_errors_without_an_uncertainty_map_use_the_estimated_noise(galaxy):
    survey, _, image, _ = galaxy
    catalog = fit_sersic([NDData(image)] + with_noise([image], NOISE), survey)
    for name in ERRORS:
        estimated, known = value(catalog[name])
        assert estimated == pytest.approx(known, rel=0.15), name


def coverage_bound(n, sigmas=3.0):
    """Largest |observed - 68.27 %| a correct error allows over ``n`` galaxies (binomial)."""
    return sigmas * np.sqrt(P68 * (1 - P68) / n)


def test_68_percent_coverage_on_noisy_simulations():
    """The fraction of truths within ±1σ is 68.27 % within the binomial scatter, per parameter.

    With 200 galaxies a correct error lands within 3σ = ±0.099 of 68.27 % with
    probability 99.7 %; errors 30 % too large or too small (coverage 0.81 or
    0.52) fail.  Fits start from the truth to save time: the minimum and
    its Jacobian, hence the errors, do not depend on the start.
    """
    survey = survey_with_noise(NOISE)
    images, truth = simulate_galaxies(N_COVERAGE, survey, ranges=RANGES, random_state=12)
    catalog = fit_sersic(with_noise(images, NOISE), survey, initial=truth)
    good = catalog["fit_flag"] == 0
    assert good.mean() > 0.95
    bound = coverage_bound(good.sum())
    for name in TARGETS:
        residual = np.abs(value(catalog[name]) - value(truth[name]))[good]
        coverage = np.mean(residual <= value(catalog[f"{name}_err"])[good])
        assert abs(coverage - P68) < bound, (name, coverage)


def test_errors_are_nan_at_a_bound(galaxy):
    survey, _, image, _ = galaxy
    # The truth's n = 1.5 lies above this range: the fit stops on its upper bound.
    catalog = fit_sersic(with_noise([image], NOISE), survey, bounds={"sersic_n": (0.3, 1.0)})
    assert catalog["fit_flag"][0] & FitFlag.AT_BOUND
    for name in ERRORS + ["pa_err", "x_offset_err", "y_offset_err"]:
        assert np.isnan(value(catalog[name])[0]), name


def test_errors_are_nan_for_unconverged_and_empty_fits(galaxy, monkeypatch):
    survey, _, image, _ = galaxy
    masked = NDData(image, mask=np.ones(image.shape, bool))
    catalog = fit_sersic([masked], survey)
    assert catalog["fit_flag"][0] == FitFlag.BAD_DATA
    assert all(np.isnan(value(catalog[name])[0]) for name in ERRORS)
    monkeypatch.setattr(_model, "MAX_NFEV", 2)
    catalog = fit_sersic(with_noise([image], NOISE), survey)
    assert catalog["fit_flag"][0] & FitFlag.NOT_CONVERGED
    assert all(np.isnan(value(catalog[name])[0]) for name in ERRORS)


@pytest.mark.parametrize("degenerate", ["zero column", "equal columns"])
def test_singular_jacobian_gives_nan(degenerate):
    rng = np.random.default_rng(0)
    jac = rng.normal(size=(100, 7))
    if degenerate == "zero column":
        jac[:, 2] = 0.0
    else:
        jac[:, 4] = 2.0 * jac[:, 3]
    x = np.array([0.0, 1.0, 0.5, 0.2, 0.1, 0.0, 0.0])
    assert np.isnan(_model.fit_errors(jac, x, 1.0)).all()
    assert np.isfinite(_model.fit_errors(rng.normal(size=(100, 7)), x, 1.0)).all()


def test_delta_method_gradient_matches_finite_differences():
    """The analytic derivatives of the catalog parameters by the fit variables."""
    limits = _model.Limits((0.1, 100.0), (0.3, 6.2), (0.0, 0.95), (-8, 8), (-8, 8))
    problem = _model._Problem((8, 8), None, np.zeros((8, 8)), np.ones((8, 8)),
                              np.ones((8, 8), bool), limits, False)

    def catalog(x):
        r_eff, n, q, pa, dx, dy = problem.parameters(x)[0]
        return np.array([25.0 - 2.5 * np.log10(np.exp(x[0])), r_eff, n, 1 - q, pa, dx, dy])

    x = np.array([1.2, 0.8, 0.4, 0.25, -0.15, 0.3, -0.2])
    step = 1e-6
    numeric = np.column_stack([(catalog(x + step * e) - catalog(x - step * e)) / (2 * step)
                               for e in np.eye(7)])
    np.testing.assert_allclose(_model._catalog_gradient(x, 7), numeric, rtol=1e-5, atol=1e-8)

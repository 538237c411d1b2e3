"""Classical single-Sérsic fits: accuracy against GalSim, masks, NaN, flags, I/O, errors."""

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import NDData, StdDevUncertainty
from astropy.table import QTable
from astropy.wcs import WCS

from astromorphnet.catalog import TARGETS, SersicFlag, make_catalog
from astromorphnet.fitting import FitFlag, fit_sersic
from astromorphnet.simulation import SurveyConfig, render_sersic, simulate_galaxies
from astromorphnet.simulation._render import PSFKernel

galsim = pytest.importorskip("galsim")

SCALE = 0.06
ZEROPOINT = 25.94
SIZE = 48
NOISE = 0.008  # the CANDELS_F160W preset's


def moffat():
    return galsim.Moffat(3, fwhm=0.18)


def galsim_galaxy(n, r_eff, q, pa, flux=50.0, dx=0.2, dy=-0.3, size=SIZE):
    """GalSim's exact drawing (independent of the fit's renderer), noiseless."""
    galaxy = galsim.Sersic(n, half_light_radius=r_eff * SCALE * np.sqrt(q), flux=flux)
    galaxy = galaxy.shear(q=q, beta=pa * galsim.degrees)
    return galsim.Convolve(galaxy, moffat()).drawImage(
        nx=size, ny=size, scale=SCALE, offset=(dx, dy)).array


def values(catalog, row=0):
    """mag, r_eff, n, ellipticity of one row as floats."""
    return [float(getattr(catalog[name][row], "value", catalog[name][row])) for name in TARGETS]


@pytest.fixture(scope="module")
def noisy():
    """A noisy F160W-like galaxy (white noise, known sigma), its truth and clean fit."""
    survey = SurveyConfig.from_preset("CANDELS_F160W", stamp_size=SIZE)
    truth = QTable({"mag": [21.0] * u.ABmag, "r_eff": [4.0] * u.pix, "sersic_n": [2.0],
                    "ellipticity": [0.35], "pa": [60.0] * u.deg, "dx": [0.3] * u.pix,
                    "dy": [-0.2] * u.pix})
    images, truth = simulate_galaxies(truth=truth, survey=survey, random_state=3)
    image = images[0].astype(float)
    std = StdDevUncertainty(np.full(image.shape, NOISE))
    catalog = fit_sersic([NDData(image, uncertainty=std)], survey)
    return survey, image, truth, catalog


def neighbour(survey):
    """A bright galaxy (mag 18.5) centred 14 pixels right and 12 up of the stamp centre."""
    kernel = PSFKernel(survey.psf_objects()[0], SCALE)
    return render_sersic((SIZE, SIZE), 10 ** (-0.4 * (18.5 - ZEROPOINT)), 3.0, 1.5, 0.7, 10.0,
                         kernel, dx=14.0, dy=12.0)


@pytest.mark.parametrize("n, r_eff, q, pa", [
    (0.5, 2.0, 0.5, 75.0), (1.0, 3.0, 0.6, 30.0), (2.5, 4.0, 0.9, 10.0), (4.0, 6.0, 0.7, 120.0),
])
def test_recovers_noiseless_galsim_galaxy(n, r_eff, q, pa):
    flux = 50.0
    image = galsim_galaxy(n, r_eff, q, pa, flux=flux)
    catalog = fit_sersic(image[np.newaxis], moffat(), pixel_scale=SCALE, zeropoint=ZEROPOINT)
    mag, r_fit, n_fit, ellipticity = values(catalog)
    assert abs(mag - (ZEROPOINT - 2.5 * np.log10(flux))) < 0.02
    assert r_fit == pytest.approx(r_eff, rel=0.02)
    assert n_fit == pytest.approx(n, rel=0.02)
    assert ellipticity == pytest.approx(1 - q, rel=0.02)
    assert catalog["pa"][0].to_value(u.deg) == pytest.approx(pa, abs=1.0)
    assert catalog["x_offset"][0].value == pytest.approx(0.2, abs=0.02)
    assert catalog["y_offset"][0].value == pytest.approx(-0.3, abs=0.02)
    # Without noise, GalSim's and the renderer's tiny differences are significant but
    # no substantial part of the light: not BAD_CHI2.
    assert catalog["fit_flag"][0] == 0 and catalog["flag"][0] == 0


def test_noisy_galaxy_with_uncertainty(noisy):
    _, _, truth, catalog = noisy
    mag, r_eff, n, ellipticity = values(catalog)
    assert abs(mag - truth["mag"][0].value) < 0.05
    assert r_eff == pytest.approx(truth["r_eff"][0].value, rel=0.1)
    assert n == pytest.approx(truth["sersic_n"][0], rel=0.2)
    assert abs(ellipticity - truth["ellipticity"][0]) < 0.05
    assert 0.8 < catalog["chi2_nu"][0] < 1.2
    assert catalog["fit_flag"][0] == 0


def test_noise_estimated_without_uncertainty(noisy):
    survey, image, _, with_std = noisy
    catalog = fit_sersic(image[np.newaxis], survey)
    # A uniform sigma does not move the optimum; chi2_nu uses the robust estimate.
    assert values(catalog) == pytest.approx(values(with_std), rel=1e-3)
    assert 0.8 < catalog["chi2_nu"][0] < 1.2


def test_masked_neighbour_does_not_bias(noisy):
    survey, image, _, clean = noisy
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    mask = np.hypot(xx - 14, yy - 12) < 9
    blended = image + neighbour(survey) * mask  # a bright blob, all of it masked
    catalog = fit_sersic([NDData(blended, mask=mask), NDData(image, mask=mask),
                          NDData(blended)], survey)
    masked, reference, unmasked = (values(catalog, i) for i in range(3))
    # masked pixels play no part at all, and the mask costs little accuracy
    assert masked == reference
    assert abs(masked[0] - values(clean)[0]) < 0.02
    assert masked[1:] == pytest.approx(values(clean)[1:], rel=0.05, abs=0.02)
    # the test has teeth: unmasked, the blob pulls the fit away
    assert abs(unmasked[0] - values(clean)[0]) > 0.1
    assert catalog["flag"][0] == 0  # 11 % masked: below the MASKED limit


def test_nan_pixels_are_ignored(noisy):
    survey, image, _, clean = noisy
    holed = image.copy()
    holed[20:23, :] = np.nan  # a bad row band through the galaxy
    holed[5, 5] = np.inf
    catalog = fit_sersic(holed[np.newaxis], survey)
    assert np.isfinite(values(catalog)).all()
    assert values(catalog) == pytest.approx(values(clean), rel=0.05, abs=0.02)


def test_all_masked_cutout_is_flagged_not_raised(noisy):
    survey, image, _, _ = noisy
    cutouts = [NDData(image, mask=np.ones(image.shape, bool)), NDData(image)]
    catalog = fit_sersic(cutouts, survey)
    assert catalog["fit_flag"][0] == FitFlag.BAD_DATA
    assert np.isnan(values(catalog, 0)).all() and np.isnan(catalog["chi2_nu"][0])
    assert catalog["flag"][0] & SersicFlag.MASKED
    assert catalog["fit_flag"][1] == 0 and np.isfinite(values(catalog, 1)).all()


def test_columns_and_units_match_make_catalog(noisy):
    survey, image, _, catalog = noisy
    reference = make_catalog(np.zeros((1, 4)), TARGETS, flag=[0], pixel_scale=np.array([SCALE]))
    assert catalog.colnames[:len(reference.colnames)] == reference.colnames
    for name in reference.colnames:
        assert getattr(catalog[name], "unit", None) == getattr(reference[name], "unit", None)
    assert catalog.colnames[len(reference.colnames):] == [
        "mag_err", "r_eff_err", "sersic_n_err", "ellipticity_err", "pa", "pa_err", "x_offset",
        "x_offset_err", "y_offset", "y_offset_err", "sn", "chi2_nu", "fit_flag"]
    assert catalog["pa"].unit == u.deg and catalog["x_offset"].unit == u.pix
    assert catalog.meta["estimator"] == "fit_sersic" and "astromorphnet_version" in catalog.meta


def test_fit_sky(noisy):
    survey, image, _, clean = noisy
    catalog = fit_sersic((image + 0.05)[np.newaxis], survey, fit_sky=True)
    assert catalog.colnames[-4:] == ["sky", "sn", "chi2_nu", "fit_flag"]
    assert catalog["sky"][0] == pytest.approx(0.05, abs=0.002)
    assert abs(values(catalog)[0] - values(clean)[0]) < 0.05


def test_n_jobs_does_not_change_results(noisy):
    survey, image, _, _ = noisy
    images = np.stack([image, image[::-1].copy()])
    one = fit_sersic(images, survey, n_jobs=1)
    two = fit_sersic(images, survey, n_jobs=2)
    for name in one.colnames:
        np.testing.assert_array_equal(np.asarray(one[name]), np.asarray(two[name]))


def test_negative_n_jobs_counts_back_from_the_cores(noisy, monkeypatch):
    import os

    from astromorphnet.fitting import _sersic_fit

    survey, image, _, _ = noisy
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    workers = []
    run = _sersic_fit._run

    def record(tasks, n_jobs):
        workers.append(n_jobs)
        yield from run(tasks, 1)  # serially: only the number asked for matters here

    monkeypatch.setattr(_sersic_fit, "_run", record)
    fit_sersic(np.stack([image, image]), survey, n_jobs=-2)
    assert workers == [3]  # joblib's convention: all cores but one


def test_bounds_in_arcsec(noisy):
    survey, image, _, _ = noisy
    in_pixels = fit_sersic(image[np.newaxis], survey, bounds={"r_eff": (0.5, 2.0)})
    in_arcsec = fit_sersic(image[np.newaxis], survey,
                           bounds={"r_eff": (0.5 * SCALE, 2.0 * SCALE) * u.arcsec})
    assert values(in_arcsec) == pytest.approx(values(in_pixels))
    assert in_arcsec["fit_flag"][0] & FitFlag.AT_BOUND  # the true r_eff is 4 pixels
    with pytest.raises(ValueError, match="are angles but some cutouts have no pixel scale"):
        fit_sersic(np.zeros((1, 16, 16)), np.ones((5, 5)), zeropoint=ZEROPOINT,
                   bounds={"r_eff": [0.01, 0.1] * u.arcsec})


def test_initial_table_and_bounds(noisy):
    survey, image, truth, clean = noisy
    for initial in truth, QTable({"sersic_n": [1.0], "pa": [50.0]}):  # all or some columns
        started = fit_sersic(image[np.newaxis], survey, initial=initial)
        assert values(started) == pytest.approx(values(clean), rel=0.01, abs=0.005)
    capped = fit_sersic(image[np.newaxis], survey, bounds={"sersic_n": (0.3, 1.0)})
    assert values(capped)[2] == pytest.approx(1.0)
    assert capped["fit_flag"][0] & FitFlag.AT_BOUND


def test_psf_image_and_list_input(noisy):
    survey, image, _, clean = noisy
    psf_image = survey.psf_objects()[0].drawImage(nx=41, ny=41, scale=SCALE,
                                                  method="no_pixel").array
    # The same PSF as an image: no pixel scale needed, r_eff only in pixels.
    catalog = fit_sersic(image[np.newaxis], psf_image, zeropoint=ZEROPOINT)
    assert "r_eff_arcsec" not in catalog.colnames
    assert values(catalog) == pytest.approx(values(clean), rel=0.02, abs=0.02)
    # A list of cutouts of different shapes, pixel scale from the WCS.
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cdelt = [-SCALE / 3600, SCALE / 3600]
    cutouts = [NDData(image[4:-4, 4:-4], wcs=wcs, meta={"MAGZERO": ZEROPOINT})]
    catalog = fit_sersic(cutouts, survey.psf_objects()[0])
    assert catalog["r_eff_arcsec"][0].to_value(u.arcsec) == pytest.approx(
        catalog["r_eff"][0].value * SCALE)
    assert abs(values(catalog)[0] - values(clean)[0]) < 0.05


def test_not_converged_is_flagged(noisy, monkeypatch):
    from astromorphnet.fitting import _model

    survey, image, _, _ = noisy
    monkeypatch.setattr(_model, "MAX_NFEV", 2)
    catalog = fit_sersic(image[np.newaxis], survey)
    assert catalog["fit_flag"][0] & FitFlag.NOT_CONVERGED
    assert np.isfinite(values(catalog)).all()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(psf="moffat"), TypeError, "psf must be a galsim.GSObject, a 2-D PSF image array"),
    (dict(psf=[moffat()]), TypeError, "psf must be a galsim.GSObject"),
    (dict(psf=np.ones(5)), ValueError, "a PSF image must be a finite 2-D array"),
    (dict(X=np.empty((0, 8, 8))), ValueError, "X is empty"),
    (dict(zeropoint=None), ValueError, "needs the cutouts' AB zeropoint"),
    (dict(pixel_scale=None), ValueError, "a GalSim PSF needs the cutouts' pixel scale"),
    (dict(bounds={"flux": (0, 1)}), ValueError, "unknown bound\\(s\\) \\['flux'\\]"),
    (dict(bounds={"sersic_n": (0.1, 4)}), ValueError, "must lie within the valid 0.3-6.2"),
    (dict(bounds={"r_eff": (3, 2)}), ValueError, "is empty: low must be < high"),
    (dict(bounds={"ellipticity": (0, 1)}), ValueError, "must lie in \\[0, 1\\)"),
    (dict(bounds={"r_eff": 3}), ValueError, "must be a \\(low, high\\) pair"),
    (dict(bounds={"r_eff": (1, 2) * u.s}), ValueError, "must be in pixels or an angle"),
    (dict(bounds={"sersic_n": (1, 2) * u.pix}), ValueError, "must be dimensionless"),
    (dict(n_jobs=0), ValueError, "n_jobs=0 runs no worker"),
    (dict(initial=np.tile([20.0, 3.0, 1.0, 0.2], (2, 1))), ValueError,
     "initial has 2 rows but X has 1 cutouts"),
])
def test_error_messages(kwargs, error, match):
    args = dict(X=np.zeros((1, 16, 16)), psf=moffat(), pixel_scale=SCALE, zeropoint=ZEROPOINT)
    args.update(kwargs)
    X, psf = args.pop("X"), args.pop("psf")
    with pytest.raises(error, match=match):
        fit_sersic(X, psf, **args)


def test_survey_with_several_psfs_is_refused():
    survey = SurveyConfig("two", pixel_scale=SCALE, zeropoint=ZEROPOINT,
                          psf=[moffat(), galsim.Moffat(3, fwhm=0.2)], noise=None)
    with pytest.raises(ValueError, match="the survey has 2 PSFs"):
        fit_sersic(np.zeros((1, 16, 16)), survey)

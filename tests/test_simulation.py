"""Simulation: parameters, conventions, fast rendering accuracy, n_jobs, HDF5 sets."""

import os

import astropy.units as u
import h5py
import numpy as np
import pytest
from astropy.table import QTable

from astromorphnet.estimators import _base
from astromorphnet.simulation import (THESIS_RANGES, CCDNoise, CorrelatedNoise, GaussianNoise,
                                      PSFKernel, Realism, SurveyConfig, draw_parameters,
                                      load_dataset, open_dataset, render_sersic,
                                      simulate_galaxies, simulate_to_hdf5)

from .conftest import FAST_RANGES, make_regressor

galsim = pytest.importorskip("galsim")


def test_draw_parameters_ranges_and_units():
    truth = draw_parameters(500, {"sersic_n": (1.0, 2.0), "r_eff": (1.0, 30.0, "log")},
                            random_state=0)
    assert truth["mag"].unit == u.ABmag and truth["r_eff"].unit == u.pix
    assert truth["sersic_n"].min() >= 1.0 and truth["sersic_n"].max() <= 2.0
    assert 1.0 <= truth["r_eff"].value.min() and truth["r_eff"].value.max() <= 30.0
    # log-uniform: the median sits near the geometric mean, not the middle
    assert np.median(truth["r_eff"].value) == pytest.approx(np.sqrt(30.0), rel=0.2)
    low, high = THESIS_RANGES["mag"]
    assert low <= truth["mag"].value.min() and truth["mag"].value.max() <= high
    assert (truth["ellipticity"] <= 0.95).all()


@pytest.mark.parametrize("ranges, match", [
    ({"sersic_n": (0.1, 4)}, "outside GalSim's valid 0.3-6.2"),
    ({"sersic_n": (1, 7)}, "outside GalSim's valid 0.3-6.2"),
    ({"r_eff": (-1, 4)}, "must be positive"),
    ({"ellipticity": (0, 1.5)}, "must lie in \\[0, 1\\)"),
    ({"mag": (25, 20)}, "is empty"),
    ({"colour": (0, 1)}, "unknown parameter range"),
    ({"r_eff": (0, 4, "log")}, "log-uniform range needs low > 0"),
    ({"r_eff": (1, 4, "cubic")}, "must be \\(low, high\\) or \\(low, high, 'log'\\)"),
])
def test_out_of_range_requests(ranges, match):
    with pytest.raises(ValueError, match=match):
        draw_parameters(3, ranges)


def test_user_truth_table_is_checked_and_drawn():
    truth = QTable({"mag": [20.0, 21.0] * u.ABmag, "r_eff": [3.0, 4.0] * u.pix,
                    "sersic_n": [1.0, 4.0], "ellipticity": [0.1, 0.5]})
    images, out = simulate_galaxies(truth=truth, stamp_size=32, random_state=0)
    assert images.shape == (2, 32, 32) and out["pa"].unit == u.deg
    bad = truth.copy()
    bad["r_eff"] = [-1.0, 2.0] * u.pix
    with pytest.raises(ValueError, match="r_eff values must lie in > 0"):
        simulate_galaxies(truth=bad)


def _moffat_survey(size=64, noise=None):
    return SurveyConfig("test", pixel_scale=0.06, zeropoint=25.94, stamp_size=size,
                        psf=galsim.Moffat(beta=3.0, fwhm=0.18), noise=noise)


def _half_light_radius(image, cx, cy):
    yy, xx = np.indices(image.shape)
    r = np.hypot(xx - cx, yy - cy).ravel()
    order = np.argsort(r)
    cum = np.cumsum(image.ravel()[order])
    return np.interp(0.5 * cum[-1], cum, r[order])


@pytest.mark.parametrize("n", [0.3, 1.0, 2.5, 4.0, 6.2])
@pytest.mark.parametrize("r_eff", [1.3, 4.0, 15.0])
def test_fast_rendering_matches_exact_galsim(n, r_eff):
    survey = _moffat_survey()
    q, pa, dx, dy = 0.7, 30.0, 0.2, -0.3
    psf = survey.psf_objects()[0]
    galaxy = galsim.Sersic(n, half_light_radius=r_eff * 0.06 * np.sqrt(q)).shear(
        q=q, beta=pa * galsim.degrees)
    exact = galsim.Convolve(galaxy, psf).drawImage(nx=64, ny=64, scale=0.06,
                                                   offset=(dx, dy)).array
    fast = render_sersic((64, 64), 1.0, r_eff, n, q, pa, PSFKernel(psf, 0.06), dx=dx, dy=dy)
    assert fast.sum() == pytest.approx(exact.sum(), rel=0.01)
    centre = (31.5 + dx, 31.5 + dy)
    assert _half_light_radius(fast, *centre) == pytest.approx(
        _half_light_radius(exact, *centre), rel=0.01)


def test_semi_major_axis_convention_measured_independently():
    from photutils.aperture import EllipticalAperture, aperture_photometry

    ranges = {"mag": (18, 18), "r_eff": (6, 6), "sersic_n": (1, 1), "ellipticity": (0.5, 0.5)}
    survey = SurveyConfig("sharp", pixel_scale=0.06, zeropoint=25.94, stamp_size=96,
                          psf=galsim.Gaussian(fwhm=0.01), noise=None)
    images, truth = simulate_galaxies(1, survey, ranges=ranges, random_state=3)
    image = images[0].astype(float)
    flux = 10 ** (-0.4 * (18 - truth.meta["zeropoint"]))
    assert image.sum() == pytest.approx(flux, rel=0.01)
    centre = (47.5 + truth["dx"][0].value, 47.5 + truth["dy"][0].value)
    theta = np.deg2rad(truth["pa"][0].value)
    half = aperture_photometry(image, EllipticalAperture(centre, 6.0, 3.0, theta=theta))
    assert half["aperture_sum"][0] == pytest.approx(flux / 2, rel=0.02)


def test_identical_whatever_n_jobs_and_seeded():
    kwargs = dict(ranges=FAST_RANGES, stamp_size=32, random_state=5,
                  realism=Realism(knot_fraction=(0, 0.3), neighbours=1, cosmic_rays=1))
    one, truth = simulate_galaxies(70, n_jobs=1, **kwargs)
    two, _ = simulate_galaxies(70, n_jobs=2, **kwargs)
    np.testing.assert_array_equal(one, two)
    other, _ = simulate_galaxies(70, n_jobs=1, **{**kwargs, "random_state": 6})
    assert not np.array_equal(one, other)
    assert {"knot_fraction", "n_neighbours", "n_cosmic_rays"} <= set(truth.colnames)
    assert truth.meta["realism"]["neighbours"] == 1


def test_noise_models_have_the_stated_variance():
    blank = np.zeros((1, 64, 64))
    for noise in (GaussianNoise(0.01), CCDNoise(sky_level=10, exposure_time=100, read_noise=5),
                  CorrelatedNoise("cosmos", variance=1e-4)):
        survey = _moffat_survey(noise=noise)
        truth = QTable({"mag": [99.0], "r_eff": [2.0], "sersic_n": [1.0],
                        "ellipticity": [0.0]})  # invisible galaxy: pure noise
        images, _ = simulate_galaxies(truth=truth, survey=survey, random_state=1)
        assert np.var(images - blank) == pytest.approx(noise.variance, rel=0.25), noise
    with pytest.raises(ValueError, match="blank-sky image must be a finite 2-D array"):
        CorrelatedNoise(np.ones(5))


def test_survey_presets_and_errors():
    ground = SurveyConfig.from_preset("GROUND_R", stamp_size=32)
    assert ground.pixel_scale == 0.2 and ground.stamp_size == 32
    images, truth = simulate_galaxies(2, ground, ranges=FAST_RANGES, random_state=0)
    assert images.shape == (2, 32, 32) and truth.meta["survey"]["name"] == "GROUND_R"
    with pytest.raises(ValueError, match="unknown survey preset 'SDSS'"):
        SurveyConfig.from_preset("SDSS")
    with pytest.raises(ValueError, match="pixel_scale must be positive"):
        SurveyConfig("x", pixel_scale=0, zeropoint=25, psf=None, noise=None)
    psf_image = galsim.Moffat(beta=3, fwhm=0.18).drawImage(nx=25, ny=25, scale=0.06).array
    listed = SurveyConfig("variable PSF", pixel_scale=0.06, zeropoint=25.94, stamp_size=32,
                          psf=[psf_image, galsim.Gaussian(fwhm=0.25)], noise=None)
    images, _ = simulate_galaxies(4, listed, ranges=FAST_RANGES, random_state=0)
    assert np.isfinite(images).all()


def test_hdf5_matches_memory_and_resumes(tmp_path):
    path = tmp_path / "sims.h5"
    kwargs = dict(ranges=FAST_RANGES, stamp_size=32, random_state=9)
    simulate_to_hdf5(path, 50, chunk_size=16, **kwargs)
    images, truth = load_dataset(path)
    expected, expected_truth = simulate_galaxies(50, **kwargs)
    np.testing.assert_array_equal(images, expected)
    assert truth["r_eff"].unit == u.pix
    np.testing.assert_array_equal(truth["mag"].value, expected_truth["mag"].value)
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        simulate_to_hdf5(path, 50, **kwargs)

    # An interrupted run: the final name does not exist, the .partial does.
    other = tmp_path / "cut.h5"
    simulate_to_hdf5(other, 50, chunk_size=16, **kwargs)
    os.rename(other, str(other) + ".partial")
    with h5py.File(str(other) + ".partial", "a") as f:
        f.attrs["n_done"] = 16
        f.attrs["complete"] = False
        f["images"][16:] = 0.0
    with pytest.raises(FileNotFoundError, match="interrupted run left a .partial file"):
        open_dataset(other)
    simulate_to_hdf5(other, 50, chunk_size=16, **kwargs)  # resumes from galaxy 16
    np.testing.assert_array_equal(load_dataset(other)[0], expected)
    os.rename(other, str(other) + ".partial")
    with pytest.raises(ValueError, match="interrupted run of a different simulation"):
        simulate_to_hdf5(other, 50, chunk_size=16, **{**kwargs, "random_state": 1})


def test_end_to_end_streaming_from_hdf5(tmp_path, monkeypatch):
    path = tmp_path / "train.h5"
    simulate_to_hdf5(path, 96, ranges=FAST_RANGES, stamp_size=32, random_state=2)
    monkeypatch.setattr(_base, "IN_MEMORY_LIMIT", 0)  # force streaming
    with open_dataset(path) as ds:
        assert "SimulatedDataset" in repr(ds) and len(ds) == 96
        reg = make_regressor(max_epochs=2, zeropoint=None).fit(ds)  # labels: ds.truth
        assert reg.n_epochs_ == 2 and "val_loss" in reg.history_
        catalog = reg.predict(ds)
        assert len(catalog) == 96 and catalog["r_eff_arcsec"].unit == u.arcsec
        assert np.isfinite(reg.score(ds, ds.truth))

"""Simulation: parameters, conventions, fast rendering accuracy, n_jobs, HDF5 sets."""

import pickle

import astropy.units as u
import h5py
import numpy as np
import pytest
from astropy.table import QTable

from astromorphnet.estimators import _base
from astromorphnet.simulation import (PRESETS, THESIS_RANGES, CCDNoise, CorrelatedNoise,
                                      GaussianNoise, PSFKernel, Realism, SurveyConfig,
                                      check_truth, draw_parameters, load_dataset, open_dataset,
                                      render_sersic, simulate_galaxies, simulate_to_hdf5)
from astromorphnet.simulation import _hdf5

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
    # uniform up to the drawable maximum, not piled up there by a cap
    assert 0 <= truth["ellipticity"].min() and truth["ellipticity"].max() < 0.95


@pytest.mark.parametrize("ranges, match", [
    ({"sersic_n": (0.1, 4)}, "outside GalSim's valid 0.3-6.2"),
    ({"sersic_n": (1, 7)}, "outside GalSim's valid 0.3-6.2"),
    ({"r_eff": (-1, 4)}, "must be positive"),
    ({"ellipticity": (0, 1)}, "ellipticity range \\(0.0, 1.0\\) must lie in \\[0, 0.95\\]"),
    ({"ellipticity": (0, 0.97)}, "b/a = 1 - ellipticity must stay >= 0.05"),
    ({"ellipticity": (-0.1, 0.5)}, "ellipticity 1 is a line, which cannot be drawn"),
    ({"mag": (25, 20)}, "reversed \\(low > high\\)"),
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
    with pytest.raises(ValueError, match="r_eff (values|labels) must lie in"):
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
                  CCDNoise(sky_level=10, exposure_time=100, read_noise=5, gain=2.5),
                  CorrelatedNoise("cosmos", variance=1e-4)):
        survey = _moffat_survey(noise=noise)
        truth = QTable({"mag": [99.0], "r_eff": [2.0], "sersic_n": [1.0],
                        "ellipticity": [0.0]})  # invisible galaxy: pure noise
        images, _ = simulate_galaxies(truth=truth, survey=survey, random_state=1)
        assert np.var(images - blank) == pytest.approx(noise.variance, rel=0.25), noise
    with pytest.raises(ValueError, match="blank-sky image must be a finite 2-D array"):
        CorrelatedNoise(np.ones(5))


def test_ccd_gain_converts_adu_to_electrons():
    image = galsim.Image(np.full((100, 100), 0.5), scale=0.2)  # ADU/s of source
    CCDNoise(sky_level=2.0, exposure_time=50.0, read_noise=3.0, gain=4.0).add(
        image, galsim.BaseDeviate(3))
    # Poisson in electrons of source and sky, read noise in electrons, back in ADU/s
    electrons = (0.5 + 2.0) * 50.0 * 4.0
    expected = (electrons + 3.0**2) / 4.0**2 / 50.0**2
    assert image.array.var() == pytest.approx(expected, rel=0.05)
    assert image.array.mean() == pytest.approx(0.5, rel=0.01)


def test_survey_presets_and_errors():
    ground = SurveyConfig.from_preset("GROUND_R", stamp_size=32)
    assert ground.pixel_scale == 0.2 and ground.stamp_size == 32
    images, truth = simulate_galaxies(2, ground, ranges=FAST_RANGES, random_state=0)
    assert images.shape == (2, 32, 32) and truth.meta["survey"]["name"] == "GROUND_R"
    assert "psf_index" not in truth.colnames  # one PSF
    with pytest.raises(ValueError, match="unknown survey preset 'SDSS'"):
        SurveyConfig.from_preset("SDSS")
    with pytest.raises(ValueError, match="pixel_scale must be a finite number > 0"):
        SurveyConfig("x", pixel_scale=0, zeropoint=25, psf=None, noise=None)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_reach_worker_processes(name):
    assert repr(pickle.loads(pickle.dumps(SurveyConfig.from_preset(name)))) == repr(
        SurveyConfig.from_preset(name))


def test_ground_preset_identical_whatever_n_jobs():
    kwargs = dict(ranges=FAST_RANGES, stamp_size=32, random_state=3)
    one, _ = simulate_galaxies(40, "GROUND_R", n_jobs=1, **kwargs)  # > 32: two tasks
    two, _ = simulate_galaxies(40, "GROUND_R", n_jobs=2, **kwargs)
    np.testing.assert_array_equal(one, two)


def test_psf_lists_are_recorded_per_galaxy():
    psfs = [galsim.Gaussian(fwhm=fwhm) for fwhm in (0.15, 0.3, 0.6)]
    survey = SurveyConfig("variable PSF", pixel_scale=0.06, zeropoint=25.94, stamp_size=32,
                          psf=psfs, noise=None)
    # A list as long as the set: galaxy i gets PSF i.
    same = QTable({"mag": [20.0] * 3, "r_eff": [2.0] * 3, "sersic_n": [1.0] * 3,
                   "ellipticity": [0.0] * 3})
    images, truth = simulate_galaxies(truth=same, survey=survey, random_state=0)
    assert truth["psf_index"].tolist() == [0, 1, 2]
    peaks = images.max(axis=(1, 2))
    assert peaks[0] > peaks[1] > peaks[2]  # the broader the PSF, the fainter the peak
    # Otherwise each galaxy draws one; the recorded one is the one drawn with.
    images, truth = simulate_galaxies(6, survey, ranges=FAST_RANGES, random_state=1)
    assert len(set(truth["psf_index"])) > 1 and set(truth["psf_index"]) <= {0, 1, 2}
    for image, row in zip(images, truth):
        alone = survey._replace(psf=psfs[row["psf_index"]])
        redrawn, _ = simulate_galaxies(truth=truth[[row.index]], survey=alone, random_state=1)
        np.testing.assert_array_equal(redrawn[0], image)
    # Image arrays and GalSim profiles mix; arrays are named by their digest.
    psf_image = galsim.Moffat(beta=3, fwhm=0.18).drawImage(nx=25, ny=25, scale=0.06).array
    mixed = survey._replace(psf=[psf_image, galsim.Gaussian(fwhm=0.25)])
    images, truth = simulate_galaxies(4, mixed, ranges=FAST_RANGES, random_state=0)
    assert np.isfinite(images).all() and "sha256:" in truth.meta["survey"]["psf"]


@pytest.mark.parametrize("call, match", [
    (lambda: simulate_galaxies(0), "n \\(the number of galaxies\\) must be an integer >= 1"),
    (lambda: simulate_galaxies(2, survey=3), "survey must be a preset name or a SurveyConfig"),
    (lambda: GaussianNoise(-1), "noise sigma must be a finite number >= 0"),
    (lambda: CCDNoise(sky_level=1, exposure_time=0), "CCDNoise exposure_time must be a finite number > 0"),
    (lambda: CCDNoise(sky_level=1, exposure_time=10, gain=0), "CCDNoise gain must be a finite number > 0"),
    (lambda: CorrelatedNoise("hst"), "source must be 'cosmos' or a blank-sky image"),
    (lambda: CorrelatedNoise(variance=0), "variance must be a finite number > 0"),
    (lambda: SurveyConfig("x", pixel_scale=0.1, zeropoint=25, psf=None, noise=None,
                          stamp_size=4), "stamp_size must be an integer >= 8"),
    (lambda: SurveyConfig("x", pixel_scale=0.1, zeropoint=25, psf=np.ones(5),
                          noise=None).psf_objects(), "a PSF image must be 2-D"),
    (lambda: Realism(knot_fraction=1), "knot_fraction must be a fraction in \\[0, 1\\)"),
    (lambda: Realism(knot_fraction=(0.3, 0.1)), "knot_fraction must be a fraction"),
    (lambda: Realism(knot_fraction=(0, 0.1, 0.2)), "knot_fraction must be a fraction"),
    (lambda: Realism(n_knots=-1), "n_knots must be an integer >= 0"),
    (lambda: Realism(bulge_fraction=1.0), "bulge_fraction must be a fraction"),
    (lambda: Realism(bulge_radius_ratio=0), "bulge_radius_ratio must be a finite number > 0"),
    (lambda: Realism(bulge_axis_ratio=1.5), "bulge_axis_ratio must lie in \\(0, 1\\]"),
    (lambda: check_truth(QTable({"mag": [20.0], "r_eff": [3.0], "sersic_n": [1.0],
                                 "ellipticity": [0.99]})),
     "ellipticity values must lie in \\[0, 0.95\\]: b/a = 1 - ellipticity must stay"),
    (lambda: simulate_to_hdf5("never.h5", 4, random_state=None), "random_state must be set"),
])
def test_error_messages(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_open_refuses_what_is_not_a_complete_set(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["images"] = np.zeros((2, 8, 8))
    with pytest.raises(ValueError, match="not a complete astromorphnet simulated set"):
        open_dataset(path)


def test_hdf5_matches_memory(tmp_path):
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


def test_hdf5_from_a_user_truth_table(tmp_path):
    truth = draw_parameters(10, FAST_RANGES, random_state=4)
    path = simulate_to_hdf5(tmp_path / "sims.h5", truth=truth, stamp_size=32, random_state=1)
    images, stored = load_dataset(path)
    expected, _ = simulate_galaxies(truth=truth, stamp_size=32, random_state=1)
    np.testing.assert_array_equal(images, expected)
    np.testing.assert_array_equal(stored["r_eff"], truth["r_eff"])


class Killed(Exception):
    """Stands for the end of a killed process."""


def _fail_after_first_block(monkeypatch):
    """Make simulate_to_hdf5 die after writing its first block, as a killed run would."""
    render = _hdf5._render_blocks

    def first_block_only(*args, index_offset, **kwargs):
        if index_offset > 0:
            raise Killed
        return render(*args, index_offset=index_offset, **kwargs)

    monkeypatch.setattr(_hdf5, "_render_blocks", first_block_only)


def test_interrupted_hdf5_run_resumes_bit_for_bit(tmp_path, monkeypatch):
    path = tmp_path / "sims.h5"
    partial = tmp_path / "sims.h5.partial"
    kwargs = dict(ranges=FAST_RANGES, stamp_size=32, random_state=9)
    expected, _ = simulate_galaxies(50, **kwargs)

    with monkeypatch.context() as patch:
        _fail_after_first_block(patch)
        with pytest.raises(Killed):
            simulate_to_hdf5(path, 50, chunk_size=16, **kwargs)
    assert not path.exists()
    with h5py.File(partial, "r") as f:
        assert f.attrs["n_done"] == 16 and not f.attrs["complete"]
    with pytest.raises(FileNotFoundError, match="interrupted run left a .partial file"):
        open_dataset(path)
    for changed in ({"ranges": {**FAST_RANGES, "mag": (20, 21)}}, {"random_state": 1},
                    {"n": None, "ranges": None,
                     "truth": draw_parameters(50, FAST_RANGES, random_state=0)}):
        with pytest.raises(ValueError, match="interrupted run of a different simulation"):
            simulate_to_hdf5(path, **{"n": 50, "chunk_size": 16, **kwargs, **changed})

    render, resumed_at = _hdf5._render_blocks, []

    def spy(*args, index_offset, **kw):
        resumed_at.append(index_offset)
        return render(*args, index_offset=index_offset, **kw)

    monkeypatch.setattr(_hdf5, "_render_blocks", spy)
    simulate_to_hdf5(path, 50, chunk_size=16, **kwargs)
    assert resumed_at == [16, 32, 48] and not partial.exists()
    np.testing.assert_array_equal(load_dataset(path)[0], expected)


def test_overwrite_keeps_the_old_set_until_the_new_one_is_complete(tmp_path, monkeypatch):
    kwargs = dict(ranges=FAST_RANGES, stamp_size=32, chunk_size=8)
    path = simulate_to_hdf5(tmp_path / "sims.h5", 20, random_state=1, **kwargs)
    old, _ = load_dataset(path)
    with monkeypatch.context() as patch:
        _fail_after_first_block(patch)
        with pytest.raises(Killed):
            simulate_to_hdf5(path, 20, random_state=2, overwrite=True, **kwargs)
    np.testing.assert_array_equal(load_dataset(path)[0], old)
    simulate_to_hdf5(path, 20, random_state=2, overwrite=True, **kwargs)
    assert not np.array_equal(load_dataset(path)[0], old)


def test_broken_partial_files_are_reported_or_restarted(tmp_path, monkeypatch):
    path = tmp_path / "sims.h5"
    partial = tmp_path / "sims.h5.partial"
    kwargs = dict(ranges=FAST_RANGES, stamp_size=32, random_state=5)
    partial.write_bytes(b"half a file")
    with pytest.raises(OSError, match="cannot be read as HDF5.*delete it to restart"):
        simulate_to_hdf5(path, 8, **kwargs)
    partial.unlink()
    # A failure while setting up the file (truth and attributes written, no
    # images yet) leaves nothing: the setup is written aside, then moved.
    create_dataset = h5py.Group.create_dataset

    def no_room_for_images(group, name, *args, **kw):
        if name == "images":
            raise OSError("disk full")
        return create_dataset(group, name, *args, **kw)

    with monkeypatch.context() as patch:
        patch.setattr(h5py.Group, "create_dataset", no_room_for_images)
        with pytest.raises(OSError, match="disk full"):
            simulate_to_hdf5(path, 8, **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    simulate_to_hdf5(path, 8, **kwargs)
    np.testing.assert_array_equal(load_dataset(path)[0], simulate_galaxies(8, **kwargs)[0])


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

"""Domain-randomised training simulations and the realistic target domains."""

import numpy as np
import pytest

from astromorphnet.simulation import (NOISE_CORRELATIONS, PSF_FAMILIES, TARGET_DOMAINS,
                                      RandomisationRanges, SimulationStream, SurveyConfig,
                                      simulate_randomised, simulate_target)

from .conftest import FAST_RANGES

galsim = pytest.importorskip("galsim")

#: Only the PSF and the background noise: no knots, neighbours, sky or cosmic rays.
QUIET = dict(knot_fraction=(0.0, 0.0), neighbours=0.0, cosmic_rays=0.0, sky_offset=0.0,
             sky_gradient=0.0)


@pytest.fixture(scope="module")
def randomised():
    """40 galaxies (two rendering tasks) with the default randomisation."""
    return simulate_randomised(40, stamp_size=32, ranges=FAST_RANGES, random_state=5)


def test_same_seed_same_set_whatever_n_jobs(randomised):
    images, truth = randomised
    again, again_truth = simulate_randomised(40, stamp_size=32, ranges=FAST_RANGES,
                                             random_state=5, n_jobs=2)
    np.testing.assert_array_equal(again, images)
    assert again_truth.pformat(max_width=-1, max_lines=-1) == truth.pformat(max_width=-1,
                                                                             max_lines=-1)
    other, other_truth = simulate_randomised(3, stamp_size=32, ranges=FAST_RANGES,
                                             random_state=6)
    assert not np.array_equal(other, images[:3])
    assert not np.array_equal(other_truth["psf_fwhm"], truth["psf_fwhm"][:3])


def test_nuisances_recorded_within_their_ranges(randomised):
    images, truth = randomised
    ranges = RandomisationRanges()
    reference = truth.meta["reference_psf_fwhm"]
    assert reference == pytest.approx(0.169, abs=0.002)  # the CANDELS F160W preset's
    assert truth.meta["randomisation"] == ranges.describe()
    assert truth["psf_fwhm"].unit == "arcsec"
    scale = truth["psf_fwhm"].value / reference
    assert (0.7 <= scale).all() and (scale <= 2.5).all() and np.ptp(scale) > 0.8
    assert set(truth["psf_family"]) == set(PSF_FAMILIES)  # 40 draws among 4
    assert set(truth["noise_correlation"]) == set(NOISE_CORRELATIONS)
    assert ((0 <= truth["psf_ellipticity"]) & (truth["psf_ellipticity"] <= 0.15)).all()
    moffat = truth["psf_family"] == "moffat"
    assert ((2 <= truth["psf_moffat_beta"][moffat]) & (truth["psf_moffat_beta"][moffat] <= 5)).all()
    assert np.isnan(truth["psf_moffat_beta"][~moffat]).all()
    airy = np.isin(truth["psf_family"], ["airy", "spikes"])
    assert ((0 <= truth["psf_obscuration"][airy]) & (truth["psf_obscuration"][airy] <= 0.4)).all()
    spikes = truth["psf_family"] == "spikes"
    assert (truth["psf_spike_fraction"][spikes] >= 0.02).all()
    assert (truth["psf_spike_fraction"][~spikes] == 0).all()
    assert ((0.5 <= truth["noise_scale"]) & (truth["noise_scale"] <= 3)).all()
    np.testing.assert_allclose(truth["noise_sigma"], 0.008 * truth["noise_scale"])
    assert (np.abs(truth["sky_offset"]) <= 0.5).all() and (np.abs(truth["sky_slope_x"]) <= 2).all()
    assert truth["n_neighbours"].sum() > 10 and truth["knot_fraction"].max() > 0.1
    assert np.isfinite(images).all()


def test_overrides_respected_and_other_draws_unchanged(randomised):
    _, truth = randomised
    changes = {"psf_families": ["moffat"], "noise_correlations": "none",
               "noise_scale": (2.0, 2.0), "moffat_beta": (3.0, 3.5)}
    images, moffat = simulate_randomised(40, stamp_size=32, ranges=FAST_RANGES,
                                         randomisation=changes, random_state=5)
    assert set(moffat["psf_family"]) == {"moffat"} and set(moffat["noise_correlation"]) == {"none"}
    np.testing.assert_array_equal(moffat["noise_scale"], 2.0)
    assert ((3 <= moffat["psf_moffat_beta"]) & (moffat["psf_moffat_beta"] <= 3.5)).all()
    # Every draw keeps its place in the galaxy's stream: the rest is as before.
    for name in ("mag", "r_eff", "psf_fwhm", "psf_ellipticity", "sky_offset", "n_neighbours"):
        np.testing.assert_array_equal(moffat[name], truth[name])
    assert moffat.meta["randomisation"]["psf_families"] == ["moffat"]


@pytest.mark.parametrize("randomisation, match", [
    ({"psf_fwhm_scale": (2.5, 0.7)}, r"psf_fwhm_scale must be a \(low, high\) pair .* "
                                     r"low <= high with low >= 0.001; got \(2.5, 0.7\)"),
    ({"noise_scale": (-1, 1)}, r"noise_scale must be .* with low >= 0.0; got \(-1, 1\)"),
    ({"psf_ellipticity": (0, 1.5)}, r"psf_ellipticity must be .* within \[0.0, 0.9\]"),
    ({"psf_families": ["lorentzian"]}, r"psf_families must be a non-empty sequence of "
                                       r"\['gaussian', 'moffat', 'airy', 'spikes'\]"),
    ({"noise_correlations": []}, "noise_correlations must be a non-empty sequence"),
    ({"sky_gradient": -1}, "sky_gradient must be a finite number >= 0; got -1"),
    ({"psf_fwhm": (1, 2)}, r"unknown randomisation setting\(s\) \['psf_fwhm'\]"),
    (3, "randomisation must be a RandomisationRanges, a dict of changes"),
])
def test_invalid_randomisation_is_refused(randomisation, match):
    with pytest.raises(ValueError, match=match):
        simulate_randomised(2, stamp_size=32, randomisation=randomisation)


def _measured_fwhm(image, pixel_scale):
    """Equivalent-circle diameter of the area above half maximum, arcsec."""
    return 2 * np.sqrt(np.count_nonzero(image >= image.max() / 2) / np.pi) * pixel_scale


@pytest.mark.parametrize("family", PSF_FAMILIES)
def test_recorded_psf_fwhm_is_the_drawn_one(family):
    # Noiseless point sources on 0.03" pixels (PSF FWHM 4-14 pixels).
    survey = SurveyConfig.from_preset("CANDELS_F160W", pixel_scale=0.03, stamp_size=48)
    point = {"mag": (18.0, 18.0), "r_eff": (0.01, 0.01), "sersic_n": (1.0, 1.0),
             "ellipticity": (0.0, 0.0)}
    images, truth = simulate_randomised(
        6, survey, ranges=point, random_state=1,
        randomisation={**QUIET, "psf_families": [family], "noise_scale": (0.0, 0.0)})
    measured = [_measured_fwhm(image, 0.03) for image in images]
    np.testing.assert_allclose(measured, truth["psf_fwhm"].value, rtol=0.1)


def test_recorded_noise_sigma_is_the_drawn_one():
    kwargs = dict(n=24, stamp_size=48, ranges=FAST_RANGES, random_state=2)
    noisy, truth = simulate_randomised(**kwargs, randomisation=QUIET)
    noiseless, _ = simulate_randomised(**kwargs, randomisation={**QUIET,
                                                                "noise_scale": (0.0, 0.0)})
    # The same galaxies: the difference is the noise field alone.
    ratio = (noisy - noiseless).std(axis=(1, 2)) / truth["noise_sigma"]
    assert set(truth["noise_correlation"]) == set(NOISE_CORRELATIONS)
    assert np.median(ratio) == pytest.approx(1.0, abs=0.05)
    np.testing.assert_allclose(ratio, 1.0, rtol=0.25)


def test_ground_target_domain():
    images, truth = simulate_target(12, "ground", stamp_size=32, random_state=0)
    assert images.shape == (12, 32, 32) and np.isfinite(images).all()
    assert truth.meta["target_domain"] == "ground" and truth.meta["stand_in_for_real_data"]
    assert truth.meta["pixel_scale"] == 0.2 and truth.meta["survey"]["name"] == "GROUND_DEEP"
    fwhm = truth["psf_fwhm"].to_value("arcsec")
    assert ((0.59 <= fwhm) & (fwhm <= 1.21)).all() and np.ptp(fwhm) > 0.2
    for name, (low, high, *_) in TARGET_DOMAINS["ground"]["ranges"].items():
        values = getattr(truth[name], "value", truth[name])
        assert ((low <= values) & (values <= high)).all(), name
    ground = SurveyConfig.from_preset("GROUND_DEEP")
    assert all(isinstance(psf.original, galsim.Moffat) for psf in ground.psf_objects())
    assert np.sqrt(ground.noise.variance) == pytest.approx(0.082, abs=0.001)


def test_hard_hst_target_domain():
    images, truth = simulate_target(6, "hst_hard", stamp_size=32, random_state=0)
    assert images.shape == (6, 32, 32) and np.isfinite(images).all()
    assert truth.meta["pixel_scale"] == 0.06 and truth.meta["target_domain"] == "hst_hard"
    fwhm = truth["psf_fwhm"].to_value("arcsec")
    assert ((0.15 <= fwhm) & (fwhm <= 0.41)).all()
    assert (truth["knot_fraction"] >= 0.05).all() and truth["psf_index"].max() < 16
    assert ((1.5 <= truth["r_eff"].value) & (truth["r_eff"].value <= 31.6)).all()
    with pytest.raises(ValueError, match=r"unknown target domain 'sdss'; choose among "
                                         r"\['ground', 'hst_hard'\]"):
        simulate_target(2, "sdss")


def test_stream_gives_fresh_reproducible_epochs():
    stream = SimulationStream(3, stamp_size=32, ranges=FAST_RANGES, random_state=7)
    first, truth = stream.epoch(1)
    assert truth.meta["epoch"] == 1 and "psf_family" in truth.colnames
    stream.epoch(0)  # drawing another epoch first changes nothing
    again, _ = SimulationStream(3, stamp_size=32, ranges=FAST_RANGES, random_state=7).epoch(1)
    np.testing.assert_array_equal(again, first)
    expected, _ = simulate_randomised(3, stamp_size=32, ranges=FAST_RANGES,
                                      random_state=stream.epoch_seed(1))
    np.testing.assert_array_equal(expected, first)
    assert not np.array_equal(stream.epoch(2)[0], first)
    plain = SimulationStream(3, stamp_size=32, ranges=FAST_RANGES, randomisation=False,
                             random_state=7)
    assert "psf_family" not in plain.epoch(1)[1].colnames
    for epoch in (-1, 1.5, True):
        with pytest.raises(ValueError, match="the epoch must be an integer >= 0; got"):
            stream.epoch_seed(epoch)
    with pytest.raises(ValueError, match=r"n \(galaxies per epoch\) must be an integer >= 1"):
        SimulationStream(0)


def test_an_estimator_trains_on_fresh_galaxies_every_epoch():
    from astropy.nddata import NDData

    from astromorphnet import SersicCNNRegressor

    stream = SimulationStream(24, stamp_size=16, ranges=FAST_RANGES, randomisation=False,
                              random_state=3)
    drawn = []
    epoch = stream.epoch
    stream.epoch = lambda i: drawn.append(i) or epoch(i)
    reg = SersicCNNRegressor("light", max_epochs=3, patience=3, batch_size=8,
                             validation_fraction=0.25, random_state=0)
    reg.fit(stream)
    # Epoch 0 fits the preprocessing; each later training epoch draws a new set.
    assert drawn[0] == 0 and set(drawn[1:]) >= {1, 2}
    assert reg.n_epochs_ == 3 and len(reg.history_["val_loss"]) == 3
    images, truth = epoch(5)
    catalog = reg.predict(NDData(images, meta={"MAGZERO": stream.survey.zeropoint}))
    assert np.isfinite(catalog["mag"].value).all() and len(catalog) == 24
    with pytest.raises(ValueError, match="fit\\(stream\\) takes no y or sample_weight"):
        SersicCNNRegressor("light").fit(stream, truth)

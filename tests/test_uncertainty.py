"""Per-galaxy uncertainties: likelihood heads, ensembles, conformal calibration."""

import astropy.units as u
import numpy as np
import pytest
from astropy.utils.exceptions import AstropyUserWarning
from scipy.stats import binom

from astromorphnet import SersicCNNRegressor, TransferLearningRegressor, load
from astromorphnet.estimators import stack_domains
from astromorphnet.uncertainty import (ONE_SIGMA, ConformalCalibration, DomainDensityRatio,
                                       SersicDistribution, family_multiplier)

from .conftest import ZEROPOINT, make_regressor

TRAIN, CAL, TEST = slice(0, 48), slice(48, 72), slice(72, 96)


def _inside_bounds(k, n, p, alpha=1e-4):
    """Whether k successes of n are within the two-sided binomial bounds of p."""
    return binom.ppf(alpha / 2, n, p) <= k <= binom.isf(alpha / 2, n, p)


# -- likelihood heads on a toy with known noise --------------------------------

@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("loss, noise", [("laplace", "laplace"), ("gaussian", "normal")])
def test_likelihood_head_learns_known_noise(loss, noise, beta):
    """A constant-input head learns the noise scale: its intervals reach their coverage."""
    import keras

    from astromorphnet.models import LIKELIHOODS, split_outputs

    rng = np.random.default_rng(0)
    y = getattr(rng, noise)(0.3, 0.5, (4000, 1)).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(0.05), LIKELIHOODS[loss](beta=beta))
    model.fit(np.ones((4000, 1), np.float32), y, epochs=30, batch_size=400, verbose=0)
    loc, log_scale = (keras.ops.convert_to_numpy(v)[0, 0, 0]
                      for v in split_outputs(model.predict(np.ones((1, 1)), verbose=0), 1))
    fresh = getattr(rng, noise)(0.3, 0.5, 3000)
    for coverage in (ONE_SIGMA, 0.95):
        half = family_multiplier(loss, coverage) * np.exp(log_scale)
        inside = int((np.abs(fresh - loc) <= half).sum())
        assert _inside_bounds(inside, 3000, coverage), (coverage, inside / 3000)


@pytest.mark.parametrize("loss, point_gradient", [
    ("laplace", lambda r: -np.sign(r)), ("gaussian", lambda r: -r)])
def test_beta_one_gives_the_location_the_point_loss_gradient(loss, point_gradient):
    """β = 1: the location's gradient is the MAE/MSE one whatever the scale; β = 0 is not."""
    import tensorflow as tf

    from astromorphnet.models import LIKELIHOODS

    y_true = np.array([[1.0], [-2.0], [0.5]], np.float32)
    log_scale = np.log([[3.0], [0.2], [1.0]]).astype(np.float32)
    y_pred = tf.Variable(np.hstack([np.zeros_like(y_true), log_scale]))
    for beta, same in ((1.0, True), (0.0, False)):
        with tf.GradientTape() as tape:
            loss_value = tf.reduce_sum(LIKELIHOODS[loss](beta=beta).call(y_true, y_pred))
        gradient = tape.gradient(loss_value, y_pred).numpy()[:, 0]
        assert np.allclose(gradient, point_gradient(y_true[:, 0])) == same


def test_ensemble_moment_matching_adds_member_spread():
    from astromorphnet.estimators._base import _combine_members

    loc = np.array([[[0.0], [2.0]]])  # one galaxy, two members, one target
    scale = np.array([[[1.0], [1.0]]])
    mean, std, family = _combine_members(loc, scale, "gaussian")
    assert family == "gaussian" and mean[0, 0] == 1.0
    assert std[0, 0] == pytest.approx(np.sqrt(2.0))  # 1 (aleatoric) + 1 (spread)
    mean, std, family = _combine_members(loc[:, :1], scale[:, :1] * 2, "laplace")
    assert family == "laplace" and std[0, 0] == 2.0  # one member keeps its own scale


# -- conformal calibration -----------------------------------------------------

def test_split_conformal_reaches_coverage_on_exchangeable_data():
    rng = np.random.default_rng(1)
    scale = rng.uniform(0.5, 2, (2000, 2))
    residual = rng.standard_t(3, (2000, 2)) * scale * 3  # heavy tails, scales off by 3
    cal = ConformalCalibration(np.abs(residual[:1000]) / scale[:1000])
    for coverage in (ONE_SIGMA, 0.95):
        inside = np.abs(residual[1000:]) <= cal.multiplier(coverage) * scale[1000:]
        for k in inside.sum(axis=0):
            assert _inside_bounds(k, 1000, coverage)


def test_weighted_conformal_corrects_covariate_shift():
    """Noise grows with x; the target sits at larger x: weights restore coverage."""
    rng = np.random.default_rng(2)
    x_source, x_target = rng.normal(0, 1, 4000), rng.normal(1.5, 1, 3000)
    noise = lambda x: rng.normal(0, 1, len(x)) * np.exp(0.5 * x)  # noqa: E731
    r_source, r_target = np.abs(noise(x_source)), np.abs(noise(x_target))
    ratio = DomainDensityRatio(n_components=1, random_state=0).fit(
        x_source[:, None], x_target[:1000, None])
    plain = ConformalCalibration(r_source[:, None])
    weighted = ConformalCalibration(r_source[:, None], ratio(x_source[:, None]), ratio)
    test = slice(1000, None)
    covered_plain = (r_target[test] <= plain.multiplier(0.9)[0]).mean()
    covered = (r_target[test] <= weighted.multiplier(0.9, ratio(x_target[test, None]))[:, 0])
    assert covered_plain < 0.8  # the shift breaks plain calibration...
    assert abs(covered.mean() - 0.9) < 0.03  # ...and weighting repairs it


def test_conformal_quantile_is_finite_sample_exact():
    cal = ConformalCalibration(np.arange(1.0, 10.0)[:, None])  # 9 galaxies
    assert cal.multiplier(0.5)[0] == 5.0  # ceil(10 · 0.5) = 5th smallest
    assert cal.multiplier(0.9)[0] == 9.0
    assert np.isinf(cal.multiplier(0.95)[0])  # 9 galaxies cannot promise 95 %


@pytest.mark.parametrize("scores, weights, match", [
    (np.ones(3), None, "shape"),
    (np.empty((0, 2)), None, "shape"),
    (np.array([[np.nan]]), None, "finite"),
    (np.array([[-1.0]]), None, "non-negative"),
    (np.ones((3, 1)), np.ones(2), "3 finite"),
    (np.ones((3, 1)), np.zeros(3), "not all zero"),
])
def test_conformal_calibration_rejects_bad_input(scores, weights, match):
    with pytest.raises(ValueError, match=match):
        ConformalCalibration(scores, weights)


@pytest.mark.parametrize("coverage", [0, 1, 1.5, -0.1, "0.9", True, None])
def test_bad_coverage_is_refused(coverage):
    dist = SersicDistribution(("mag",), np.zeros((1, 1)), np.ones((1, 1)), "gaussian",
                              lambda z: z)
    with pytest.raises(ValueError, match="coverage must be a probability"):
        dist.interval(coverage)


def test_intervals_stay_in_physical_ranges():
    dist = SersicDistribution(("sersic_n", "ellipticity"), np.zeros((1, 2)),
                              np.ones((1, 2)), "gaussian", lambda z: z)
    lo, hi = dist.interval(0.99)
    assert lo.tolist() == [[0.1, 0.0]] and hi[0, 0] > 2 and hi[0, 1] == 1.0


# -- estimators ----------------------------------------------------------------

@pytest.fixture(scope="module")
def likelihood_fit(survey):
    images, truth = survey
    return make_regressor(max_epochs=2).fit(images[TRAIN], truth[TRAIN])


def test_catalog_error_columns_and_units(likelihood_fit, survey):
    catalog = likelihood_fit.predict(survey[0][TEST])
    assert catalog.colnames[:4] == ["mag", "mag_err", "mag_lo", "mag_hi"]
    assert catalog["mag_err"].unit == u.mag and catalog["mag_lo"].unit == u.ABmag
    assert catalog["r_eff_err"].unit == u.pix and catalog["r_eff_hi"].unit == u.pix
    assert catalog.meta["coverage"] == 0.68 and catalog.meta["calibrated"] is False
    for name in ("mag", "r_eff", "sersic_n", "ellipticity"):
        value, lo, hi = (catalog[name + s].value for s in ("", "_lo", "_hi"))
        assert np.all(lo <= value) and np.all(value <= hi) and np.all(catalog[name + "_err"] > 0)
    # The r_eff interval is asymmetric: it is built in log10 space.
    below = catalog["r_eff"] - catalog["r_eff_lo"]
    assert np.all((catalog["r_eff_hi"] - catalog["r_eff"]) > below)


def test_coverage_parameter_sets_interval_width(likelihood_fit, survey):
    from sklearn.base import clone

    wide = clone(likelihood_fit).set_params(coverage=0.95)
    wide.__dict__.update({k: v for k, v in likelihood_fit.__dict__.items() if k.endswith("_")})
    narrow_cat, wide_cat = likelihood_fit.predict(survey[0][TEST]), wide.predict(survey[0][TEST])
    assert np.all(wide_cat["mag_hi"] - wide_cat["mag_lo"] > narrow_cat["mag_hi"]
                  - narrow_cat["mag_lo"])
    assert np.allclose(wide_cat["mag_err"], narrow_cat["mag_err"])  # 1σ does not change


def test_calibrate_restores_coverage_on_a_shifted_target(survey):
    """Calibrated on 300 labelled galaxies of a noisier survey, 68 % intervals cover ~68 %."""
    from astromorphnet.simulation import simulate_real_like

    from .conftest import FAST_RANGES

    images, truth = survey
    reg = make_regressor(max_epochs=2).fit(images, truth)
    real, real_truth = simulate_real_like(600, stamp_size=32, ranges=FAST_RANGES,
                                          random_state=5)
    reg.calibrate(real[:300], real_truth[:300])
    assert reg.calibration_.n_calibration == 300 and not reg.calibration_.weighted
    catalog = reg.predict(real[300:])
    assert catalog.meta["calibrated"] is True
    for name in ("mag", "r_eff", "sersic_n", "ellipticity"):
        covered = int(np.sum((catalog[name + "_lo"] <= real_truth[300:][name])
                             & (real_truth[300:][name] <= catalog[name + "_hi"])))
        # Conformal coverage is Beta-distributed around nominal (n = 300),
        # then observed on 300 test galaxies: both spreads, at 4σ.
        assert abs(covered / 300 - 0.68) < 4 * np.sqrt(2 * 0.68 * 0.32 / 300), (name, covered)


def test_weighted_calibration_and_save_load(likelihood_fit, survey, tmp_path):
    images, truth = survey
    X, y, domain = stack_domains(images[CAL], truth[CAL], images[TEST])
    reg = load_copy(likelihood_fit, tmp_path / "a.pkl")
    with pytest.warns(AstropyUserWarning, match="too few"):
        reg.calibrate(X, y, sample_domain=domain)
    assert reg.calibration_.weighted
    before = reg.predict(images[TEST])
    reg.save(tmp_path / "b.pkl")
    after = load(tmp_path / "b.pkl").predict(images[TEST])
    for name in ("sersic_n_err", "sersic_n_lo", "ellipticity_hi"):
        np.testing.assert_allclose(after[name], before[name])
    assert after.meta["calibrated"] is True


def load_copy(estimator, path):
    estimator.save(path)
    return load(path)


def test_point_loss_gives_errors_only_after_calibration(survey):
    images, truth = survey
    reg = make_regressor(loss="mae", max_epochs=1).fit(images[TRAIN], truth[TRAIN])
    assert "mag_err" not in reg.predict(images[TEST]).colnames
    with pytest.raises(ValueError, match="gives no uncertainties.*calibrate"):
        reg.predict_distribution(images[TEST])
    reg.calibrate(images[CAL], truth[CAL])  # 24 galaxies: enough for 95 %
    dist = reg.predict_distribution(images[TEST])
    lo, hi = dist.interval(0.5)
    z_width = np.log10(hi[:, 1]) - np.log10(lo[:, 1])  # r_eff: constant width in log10
    assert np.allclose(z_width, z_width[0])


def test_refit_drops_calibration(likelihood_fit, survey, tmp_path):
    images, truth = survey
    reg = load_copy(likelihood_fit, tmp_path / "c.pkl")
    reg.calibrate(images[CAL], truth[CAL])
    reg.set_params(max_epochs=1).fit(images[TRAIN], truth[TRAIN])
    assert not hasattr(reg, "calibration_")


def test_ensemble_fine_tunes_and_predicts(survey):
    images, truth = survey
    ens = make_regressor(n_members=2, max_epochs=1).fit(images[TRAIN], truth[TRAIN])
    assert ens.model_.output_shape == (None, 2 * 2 * 4) and ens.n_members_ == 2
    tl = TransferLearningRegressor(ens, max_epochs=1, zeropoint=ZEROPOINT,
                                   random_state=0).fit(images[CAL], truth[CAL])
    assert tl.n_members_ == 2 and np.all(tl.predict(images[TEST])["ellipticity_err"] > 0)


@pytest.mark.parametrize("params, match", [
    (dict(loss="mae", n_members=2), "ensemble.*needs a likelihood loss"),
    (dict(n_members=0), "n_members"),
    (dict(coverage=1.0), "coverage"),
])
def test_bad_uncertainty_parameters(params, match, survey):
    images, truth = survey
    with pytest.raises(ValueError, match=match):
        make_regressor(**params).fit(images[TRAIN], truth[TRAIN])


def test_fine_tuning_loss_must_match_the_head(likelihood_fit, survey):
    images, truth = survey
    with pytest.raises(ValueError, match="likelihood: fine-tune it with one of"):
        TransferLearningRegressor(likelihood_fit, loss="mae", max_epochs=1,
                                  zeropoint=ZEROPOINT).fit(images[CAL], truth[CAL])


@pytest.mark.parametrize("kwargs, match", [
    (dict(y=None), "needs the calibration galaxies' labels"),
    (dict(y=np.full((24, 4), np.nan)), "needs labelled target galaxies"),
    (dict(y=np.full((3, 4), 0.5)), "24 cutouts but y has 3"),
])
def test_calibrate_rejects_bad_input(likelihood_fit, survey, kwargs, match):
    with pytest.raises(ValueError, match=match):
        likelihood_fit.calibrate(survey[0][CAL], **kwargs)
    assert not hasattr(likelihood_fit, "calibration_")  # nothing half-set


def test_calibrate_needs_a_fitted_estimator(survey):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        SersicCNNRegressor().calibrate(survey[0][CAL], survey[1][CAL])

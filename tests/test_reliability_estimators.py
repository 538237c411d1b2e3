"""Bad inputs and faults at the estimators: nothing silently wrong, nothing half-changed.

Each case is one input or fault a demanding user could give; every one must
fail with a message that says what was wrong, or give the right result.
"""

import random

import astropy.units as u
import keras
import numpy as np
import pytest
from astropy.table import QTable
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.utils._param_validation import InvalidParameterError

from astromorphnet import AdversarialDARegressor, SersicCNNRegressor, TransferLearningRegressor
from astromorphnet.catalog import TARGETS, SersicCatalog, labels_to_array
from astromorphnet.estimators import stack_domains
from astromorphnet.metrics import r2_table

from .conftest import ZEROPOINT, make_regressor

TEST = slice(80, 96)

ESTIMATORS = {
    "sim-only": lambda **p: SersicCNNRegressor(**{"architecture": "light", **p}),
    "transfer": lambda **p: TransferLearningRegressor(**p),
    "dann": lambda **p: AdversarialDARegressor(**{"architecture": "light", **p}),
}

#: (parameter, bad value, estimators that have it) -> scikit-learn's declarative check.
BAD_PARAMETERS = [
    ("max_epochs", 0, "all"), ("max_epochs", -1, "all"), ("max_epochs", 2.5, "all"),
    ("batch_size", 0, "all"), ("batch_size", -8, "all"), ("batch_size", "16", "all"),
    ("learning_rate", -1.0, "all"), ("learning_rate", 0.0, "all"),
    ("learning_rate", "fast", "all"),
    ("validation_fraction", 1.5, "all"), ("validation_fraction", 1.0, "all"),
    ("validation_fraction", -0.1, "all"),
    ("zeropoint", float("nan"), "all"), ("zeropoint", "25.9", "all"),
    ("pixel_scale", -0.06, "all"), ("pixel_scale", 0.0, "all"),
    ("random_state", "seed", "all"), ("verbose", -1, "all"),
    ("patience", -1, "all"),
    ("normalization", "log", ("sim-only", "dann")),
    ("image_size", 0, ("sim-only", "dann")), ("image_size", -32, ("sim-only", "dann")),
    ("targets", 3, ("sim-only", "dann")),
    ("log_targets", 1, ("sim-only", "dann")),
    ("loss", 3, "all"),
    ("architecture", 7, ("sim-only", "dann")),
    ("alpha", 0.0, ("dann",)), ("alpha", 1.5, ("dann",)),
    ("reversal_strength", -1.0, ("dann",)), ("reversal_warmup", -2, ("dann",)),
    ("supervised", "yes", ("dann",)), ("domain_units", 64, ("dann",)),
    ("trainable", "some", ("transfer",)), ("trainable", -1, ("transfer",)),
    ("pretrained", 42, ("transfer",)),
]


def _cases():
    for name, value, which in BAD_PARAMETERS:
        for kind in (ESTIMATORS if which == "all" else which):
            yield pytest.param(kind, name, value, id=f"{kind}-{name}={value!r}")


@pytest.mark.parametrize("kind, name, value", _cases())
def test_bad_parameter_rejected_before_any_work(kind, name, value, survey):
    images, truth = survey
    estimator = ESTIMATORS[kind](**{name: value})
    with pytest.raises(InvalidParameterError,
                       match=rf"The '{name}' parameter of {type(estimator).__name__} must be"):
        estimator.fit(images[:8], truth[:8])


# -- labels --------------------------------------------------------------------------

IMPOSSIBLE = [("ellipticity", 1.5, r"\[0, 1\)"), ("ellipticity", -0.5, r"\[0, 1\)"),
              ("ellipticity", 1.0, r"\[0, 1\)"), ("sersic_n", 50.0, r"\[0.1, 10\]"),
              ("sersic_n", 0.0, r"\[0.1, 10\]"), ("r_eff", 0.0, r"\(0, inf\)"),
              ("r_eff", -2.0, r"\(0, inf\)")]


def _set(table, column, row, value):
    unit = getattr(table[column], "unit", None)
    table[column][row] = value if unit is None else value * unit


@pytest.mark.parametrize("column, value, accepted", IMPOSSIBLE)
def test_impossible_labels_rejected_at_fit(column, value, accepted, survey):
    images, truth = survey
    bad = truth[:16].copy()
    _set(bad, column, 3, value)
    with pytest.raises(ValueError, match=rf"{column} labels must lie in {accepted}.*first: \[3\]"):
        make_regressor().fit(images[:16], bad)


@pytest.mark.parametrize("column, value, accepted", IMPOSSIBLE[:4])
def test_impossible_labels_rejected_at_score(column, value, accepted, fitted, survey):
    images, truth = survey
    bad = truth[TEST].copy()
    _set(bad, column, 0, value)
    with pytest.raises(ValueError, match=rf"{column} labels must lie in {accepted}"):
        fitted.score(images[TEST], bad)


def test_impossible_labels_rejected_by_domain_adaptation(survey):
    images, truth = survey
    labels = labels_to_array(truth[:32])
    labels[5, 3] = 2.0
    with pytest.raises(ValueError, match=r"ellipticity labels must lie in \[0, 1\)"):
        AdversarialDARegressor(architecture="light", zeropoint=ZEROPOINT).fit(
            images[:32], labels, sample_domain=np.r_[np.ones(16), -np.ones(16)])


def test_infinite_label_named_by_row(survey):
    images, truth = survey
    labels = labels_to_array(truth[:16])
    labels[7, 0] = np.inf
    with pytest.raises(ValueError, match=r"infinite values in 1 row\(s\) \(first: \[7\]\)"):
        make_regressor().fit(images[:16], labels)


def test_nan_label_message_points_to_domain_adaptation_only_in_fit(survey):
    images, truth = survey
    labels = labels_to_array(truth[:16])
    labels[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"first: \[2\].*AdversarialDARegressor"):
        make_regressor().fit(images[:16], labels)
    with pytest.raises(ValueError, match=r"y_true contain NaN") as info:
        r2_table(labels, labels_to_array(truth[:16]))
    assert "AdversarialDARegressor" not in str(info.value)


def test_angular_r_eff_in_metrics_does_not_advise_a_missing_parameter(survey):
    truth = survey[1][:8].copy()
    truth["r_eff"] = truth["r_eff"].value * 0.06 * u.arcsec
    with pytest.raises(ValueError, match="convert r_eff to pixels first"):
        r2_table(truth, labels_to_array(survey[1][:8]))


# -- data ------------------------------------------------------------------------------

def test_all_nan_training_images_rejected(survey):
    images, truth = survey
    with pytest.raises(ValueError, match=r"16 of 16 training cutouts have no valid pixel"):
        make_regressor().fit(np.full((16, 32, 32), np.nan), truth[:16])


def test_one_blank_training_image_named(survey):
    images, truth = survey
    blank = images[:16].copy()
    blank[9] = np.nan
    with pytest.raises(ValueError, match=r"1 of 16 training cutouts .*first: \[9\]"):
        make_regressor().fit(blank, truth[:16])


def test_fully_masked_training_image_rejected(survey):
    images, truth = survey
    masked = np.ma.masked_array(images[:16], mask=np.zeros(images[:16].shape, bool))
    masked.mask[4] = True
    with pytest.raises(ValueError, match=r"first: \[4\]"):
        make_regressor().fit(masked, truth[:16])


@pytest.mark.parametrize("domain, match", [
    (np.r_[np.ones(8), np.nan, -np.ones(7)], "NaN"),
    (np.r_[np.ones(8), 0.5, -np.ones(7)], "fractions"),
    (np.array(["s"] * 8 + ["t"] * 8), "non-numbers"),
    (np.r_[np.ones(8), 0, -np.ones(7)], "0"),
])
def test_bad_sample_domain_rejected(domain, match, survey):
    images, truth = survey
    with pytest.raises(ValueError, match=rf"sample_domain must hold .*{match}"):
        AdversarialDARegressor(architecture="light", zeropoint=ZEROPOINT).fit(
            images[:16], truth[:16], sample_domain=domain)


# -- atomic fitted state ------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_fitted(survey):
    images, truth = survey
    return make_regressor(max_epochs=1).fit(images[:32], truth[:32])


def _snapshot(estimator, images):
    return (estimator.model_id_, estimator.target_scaler_.mean_.copy(),
            estimator.input_shape_, np.asarray(estimator.predict(images)))


def _assert_unchanged(before, estimator, images):
    after = _snapshot(estimator, images)
    assert after[0] == before[0]
    np.testing.assert_array_equal(after[1], before[1])
    assert after[2] == before[2]
    np.testing.assert_array_equal(after[3], before[3])


def test_failed_refit_with_bad_loss_leaves_fitted_state(small_fitted, survey):
    images, truth = survey
    before = _snapshot(small_fitted, images[TEST])
    shifted = truth[32:64].copy()
    shifted["mag"] = shifted["mag"] + 5 * u.mag  # a new scaler, if it leaked
    small_fitted.set_params(loss="no_such_loss")
    try:
        with pytest.raises(ValueError, match="no_such_loss"):
            small_fitted.fit(images[32:64], shifted)
    finally:
        small_fitted.set_params(loss="laplace")
    _assert_unchanged(before, small_fitted, images[TEST])


def test_failed_refit_on_another_stamp_size_leaves_fitted_state(small_fitted, survey):
    images, truth = survey
    before = _snapshot(small_fitted, images[TEST])
    small_fitted.set_params(loss="no_such_loss")
    try:
        with pytest.raises(ValueError, match="no_such_loss"):
            small_fitted.fit(images[32:64, 4:-4, 4:-4], truth[32:64])
    finally:
        small_fitted.set_params(loss="laplace")
    _assert_unchanged(before, small_fitted, images[TEST])


def test_interrupted_refit_leaves_fitted_state(small_fitted, survey, monkeypatch):
    images, truth = survey
    before = _snapshot(small_fitted, images[TEST])

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.Model, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        small_fitted.fit(images[32:64], truth[32:64])
    monkeypatch.undo()
    _assert_unchanged(before, small_fitted, images[TEST])


def test_failed_first_fit_leaves_estimator_unfitted(survey):
    images, truth = survey
    reg = make_regressor(loss="no_such_loss")
    with pytest.raises(ValueError, match="no_such_loss"):
        reg.fit(images[:16], truth[:16])
    with pytest.raises(NotFittedError):
        reg.predict(images[:2])
    assert not [key for key in vars(reg) if key.endswith("_") and not key.endswith("__")]


def test_failed_transfer_refit_leaves_fitted_state(small_fitted, survey):
    images, truth = survey
    tl = TransferLearningRegressor(small_fitted, max_epochs=1, random_state=0,
                                   zeropoint=ZEROPOINT).fit(images[32:64], truth[32:64])
    before = _snapshot(tl, images[TEST])
    tl.set_params(loss="no_such_loss")
    with pytest.raises(ValueError, match="no_such_loss"):
        tl.fit(images[64:80], truth[64:80])
    _assert_unchanged(before, tl, images[TEST])


def test_successful_refit_replaces_whole_state(small_fitted, survey):
    images, truth = survey
    reg = clone(small_fitted).fit(images[:32], truth[:32])
    old_id, old_model = reg.model_id_, reg.model_
    reg.set_params(random_state=3).fit(images[32:64], truth[32:64])
    assert reg.model_id_ != old_id and reg.model_ is not old_model
    assert reg.predict(images[TEST]).meta["model_id"] == reg.model_id_


def test_fit_leaves_global_random_generators_alone(survey):
    images, truth = survey
    random.seed(123)
    np.random.seed(123)
    expected = (random.random(), np.random.random())
    random.seed(123)
    np.random.seed(123)
    make_regressor(max_epochs=1).fit(images[:16], truth[:16])
    assert (random.random(), np.random.random()) == expected


# -- scikit-learn model selection on the default (catalog) output -------------------------

def test_catalog_converts_to_the_array_scorers_expect(fitted, survey):
    images, truth = survey
    catalog = fitted.predict(images[TEST])
    assert isinstance(catalog, SersicCatalog)
    array = np.asarray(catalog)
    assert array.shape == catalog.shape == (16, 4)
    np.testing.assert_array_equal(array, labels_to_array(catalog, TARGETS, check_range=False))


def test_gridsearch_r2_scoring_on_default_output(survey):
    images, truth = survey
    assert isinstance(truth, SersicCatalog)
    search = GridSearchCV(make_regressor(max_epochs=1), {"learning_rate": [1e-3, 3e-3]},
                          scoring="r2", cv=KFold(2), error_score="raise")
    search.fit(images[:48], truth[:48])
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all()
    # The scorer's value is R² of the catalog against the labels, by hand.
    best = search.best_estimator_
    from sklearn.metrics import r2_score
    expected = r2_score(labels_to_array(truth[TEST]), np.asarray(best.predict(images[TEST])))
    assert best.score(images[TEST], truth[TEST]) == pytest.approx(expected)


def test_cross_validation_splits_returned_truth_tables(survey):
    images, truth = survey
    scores = cross_val_score(make_regressor(max_epochs=1), images[:48], truth[:48],
                             cv=KFold(2), error_score="raise")
    assert np.isfinite(scores).all()


def test_plain_qtable_labels_can_be_wrapped_for_model_selection(survey):
    images, truth = survey
    plain = QTable(truth[:48])
    scores = cross_val_score(make_regressor(max_epochs=1), images[:48], SersicCatalog(plain),
                             cv=KFold(2), scoring="r2", error_score="raise")
    assert np.isfinite(scores).all()


def test_catalog_round_trips_through_files(fitted, survey, tmp_path):
    catalog = fitted.predict(survey[0][TEST])
    catalog.write(tmp_path / "cat.ecsv")
    back = SersicCatalog.read(tmp_path / "cat.ecsv")
    np.testing.assert_allclose(np.asarray(back), np.asarray(catalog), rtol=1e-6)
    assert back["mag"].unit == u.ABmag


def test_stack_domains_rejects_impossible_source_labels(survey):
    images, truth = survey
    labels = labels_to_array(truth[:8])
    labels[0, 2] = 20.0
    with pytest.raises(ValueError, match=r"sersic_n labels must lie in \[0.1, 10\]"):
        stack_domains(images[:8], labels, images[8:16])

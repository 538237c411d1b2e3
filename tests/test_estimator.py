"""SersicCNNRegressor: catalogs, reproducibility, persistence, sklearn composition."""

import copy
import pickle
import subprocess
import sys

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import NDData
from astropy.table import QTable, Table
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline

from astromorphnet import SersicCNNRegressor
from astromorphnet.catalog import TARGETS, SersicFlag, labels_to_array
from astromorphnet.preprocessing import CutoutCropper, ImageNormalizer

from .conftest import make_regressor

TEST = slice(80, 96)


def _array(truth, targets=TARGETS):
    return np.column_stack([truth[t].value for t in targets])


def test_catalog_units_flags_and_meta(fitted, survey):
    catalog = fitted.predict(survey[0][TEST])
    assert isinstance(catalog, QTable)
    assert catalog.colnames == [f"{name}{suffix}" for name in TARGETS
                                for suffix in ("", "_err", "_lo", "_hi")] + ["flag"]
    assert catalog["mag"].unit == u.ABmag
    assert catalog["r_eff"].unit == u.pix
    assert catalog["sersic_n"].unit == u.dimensionless_unscaled
    assert catalog["flag"].dtype == np.int32
    assert catalog.meta["estimator"] == "SersicCNNRegressor"
    assert catalog.meta["model"] == "light_cnn"
    assert catalog.meta["astromorphnet_version"]
    assert "date" in catalog.meta
    # The model identity follows the weights: same after pickling, new after a refit.
    assert catalog.meta["model_id"] == fitted.model_id_ and len(fitted.model_id_) == 16
    restored = pickle.loads(pickle.dumps(fitted))
    assert restored.predict(survey[0][TEST]).meta["model_id"] == fitted.model_id_
    refit = clone(fitted).set_params(random_state=1).fit(survey[0][:16], survey[1][:16])
    assert refit.model_id_ != fitted.model_id_


def test_training_actually_learns(survey):
    images, truth = survey
    reg = make_regressor(max_epochs=25, patience=25, targets=("mag",))
    reg.fit(images[:80], truth[:80])
    assert reg.n_epochs_ == 25
    assert reg.history_["loss"][-1] < 0.6 * reg.history_["loss"][0]
    assert reg.score(images[TEST], truth[TEST]) > 0.5


def test_out_of_range_flag(fitted, survey):
    values = _array(fitted.predict(survey[0][TEST]))
    wide = copy.copy(fitted)
    wide.label_range_ = (values.min(axis=0) - 1, values.max(axis=0) + 1)  # around all
    assert not any(wide.predict(survey[0][TEST])["flag"] & SersicFlag.OUT_OF_RANGE)
    narrow = copy.copy(fitted)
    narrow.label_range_ = (values.max(axis=0) + 1, values.max(axis=0) + 2)  # below all
    assert all(narrow.predict(survey[0][TEST])["flag"] & SersicFlag.OUT_OF_RANGE)


def test_labels_as_table_array_and_converted_units(survey):
    images, truth = survey
    by_table = make_regressor(max_epochs=1).fit(images[:32], truth[:32])
    by_array = make_regressor(max_epochs=1).fit(images[:32], _array(truth[:32]))
    plain = Table(truth[:32])
    by_plain_table = make_regressor(max_epochs=1).fit(images[:32], plain)
    in_arcsec = truth[:32].copy()
    in_arcsec["r_eff"] = in_arcsec["r_eff"].value * 0.06 * u.arcsec
    by_arcsec = make_regressor(max_epochs=1, pixel_scale=0.06).fit(images[:32], in_arcsec)
    expected = _array(by_table.predict(images[TEST]))
    for reg in (by_array, by_plain_table, by_arcsec):
        np.testing.assert_allclose(_array(reg.predict(images[TEST])), expected, rtol=1e-4)
    with pytest.raises(ValueError, match=r"r_eff labels are angles \(arcsec\) but the "
                                         r"pixel scale of some rows is unknown"):
        make_regressor(max_epochs=1).fit(images[:32], in_arcsec)
    wrong = truth[:32].copy()
    wrong["ellipticity"] = wrong["ellipticity"] * u.m
    with pytest.raises(u.UnitsError, match="'ellipticity' has unit"):
        make_regressor(max_epochs=1).fit(images[:32], wrong)


def test_random_state_reproducibility(survey):
    images, truth = survey
    first = make_regressor(max_epochs=2, random_state=3).fit(images[:48], truth[:48])
    second = make_regressor(max_epochs=2, random_state=3).fit(images[:48], truth[:48])
    other = make_regressor(max_epochs=2, random_state=4).fit(images[:48], truth[:48])
    np.testing.assert_array_equal(_array(first.predict(images[TEST])),
                                  _array(second.predict(images[TEST])))
    assert not np.allclose(_array(first.predict(images[TEST])),
                           _array(other.predict(images[TEST])))


def test_subset_of_targets_and_log_targets(survey):
    images, truth = survey
    reg = make_regressor(max_epochs=1, targets=("r_eff", "sersic_n"), zeropoint=None)
    catalog = reg.fit(images[:32], truth[:32]).predict(images[TEST])
    assert [c for c in catalog.colnames if not c.endswith(("_err", "_lo", "_hi"))] == [
        "r_eff", "sersic_n", "flag"]
    assert (catalog["r_eff"] > 0).all()  # log space guarantees positivity
    with pytest.raises(ValueError, match="log_targets \\['colour'\\] are not Sérsic"):
        make_regressor(log_targets=("colour",)).fit(images[:8], truth[:8])
    negative = np.full(8, -1.0)
    with pytest.raises(ValueError, match=r"r_eff labels must lie in \(0, inf\)"):
        make_regressor(targets=("r_eff",), log_targets=("r_eff",)).fit(images[:8], negative)


@pytest.mark.parametrize("params, match", [
    ({"architecture": "resnet50"}, "architecture must be one of \\['light', 'resnet', 'thesis'\\]"),
    ({"targets": ("mag", "colour")}, "targets must be distinct names"),
    ({"normalization": "log"}, "The 'normalization' parameter of SersicCNNRegressor must be"),
    ({"normalization": 3}, "The 'normalization' parameter of SersicCNNRegressor must be"),
    ({"image_size": -3}, "The 'image_size' parameter of SersicCNNRegressor must be"),
    ({"image_size": (32, 0)}, "image_size must be a positive int or \\(ny, nx\\)"),
])
def test_parameter_errors(survey, params, match):
    images, truth = survey
    with pytest.raises(ValueError, match=match):
        make_regressor(**params).fit(images[:8], truth[:8])


def test_not_fitted():
    with pytest.raises(NotFittedError):
        SersicCNNRegressor().predict(np.ones((1, 8, 8)))


def test_failed_fit_leaves_the_estimator_unfitted(survey):
    images, truth = survey
    est = make_regressor()
    with pytest.raises(ValueError, match="X has 8 cutouts but y has 7 label rows"):
        est.fit(images[:8], truth[:7])
    with pytest.raises(NotFittedError):
        est.predict(images[:2])


def test_verbose_levels(survey, capsys):
    images, truth = survey
    make_regressor(max_epochs=1, verbose=0).fit(images[:16], truth[:16])
    assert capsys.readouterr().out == ""
    make_regressor(max_epochs=2, verbose=1).fit(images[:16], truth[:16])
    out = capsys.readouterr().out
    assert "Epoch 2/2" in out
    assert "SersicCNNRegressor: 2 epochs in" in out and "best val_loss" in out


def test_score_is_mean_r2(fitted, survey):
    from sklearn.metrics import r2_score

    images, truth = survey
    expected = r2_score(_array(truth[TEST]), _array(fitted.predict(images[TEST])))
    assert fitted.score(images[TEST], truth[TEST]) == pytest.approx(expected)


def test_set_output_array_and_clone(fitted, survey):
    images = survey[0][TEST]
    est = pickle.loads(pickle.dumps(fitted)).set_output(predict="array")
    array = est.predict(images)
    assert isinstance(array, np.ndarray) and array.shape == (16, 4)
    np.testing.assert_allclose(array, _array(fitted.predict(images)))
    assert clone(est)._output_kind() == "array"
    est.set_output(predict="default")
    assert isinstance(est.predict(images), QTable)
    with pytest.raises(ValueError, match="predict output must be one of"):
        est.set_output(predict="pandas")


def test_pickle_round_trip(fitted, survey):
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(_array(restored.predict(survey[0][TEST])),
                                  _array(fitted.predict(survey[0][TEST])))


def test_save_load_in_a_fresh_process(fitted, survey, tmp_path):
    images = survey[0][TEST]
    np.save(tmp_path / "images.npy", images)
    fitted.save(tmp_path / "model.pkl")
    np.save(tmp_path / "expected.npy", _array(fitted.predict(images)))
    script = (
        "import numpy as np, sys\n"
        "from astromorphnet import SersicCNNRegressor\n"
        "d = sys.argv[1]\n"
        "est = SersicCNNRegressor.load(d + '/model.pkl')\n"
        "cat = est.predict(np.load(d + '/images.npy'))\n"
        "got = np.column_stack([cat[c].value for c in est.targets_])\n"
        "assert np.array_equal(got, np.load(d + '/expected.npy')), 'predictions differ'\n")
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True)
    with open(tmp_path / "other.pkl", "wb") as f:
        pickle.dump({"not": "an estimator"}, f)
    with pytest.raises(TypeError, match="holds a dict, not a SersicCNNRegressor"):
        SersicCNNRegressor.load(tmp_path / "other.pkl")


def test_pipeline_with_cropper_and_normalizer(survey):
    images, truth = survey
    # Cutouts of mixed sizes, as from a mosaic.
    cutouts = [NDData(np.pad(im, i % 3)) for i, im in enumerate(images)]
    pipe = make_pipeline(CutoutCropper(size=28), ImageNormalizer(),
                         make_regressor(max_epochs=1, normalization=None))
    pipe.fit(cutouts[:48], truth[:48])
    catalog = pipe.predict(cutouts[TEST])
    assert len(catalog) == 16 and catalog["mag"].unit == u.ABmag
    assert pipe[-1].input_shape_ == (28, 28)
    assert np.isfinite(pipe.score(cutouts[TEST], truth[TEST]))


def test_grid_search_default_scoring(survey):
    images, truth = survey
    search = GridSearchCV(make_regressor(max_epochs=1),
                          {"learning_rate": [1e-3, 1e-2], "architecture": ["light", _tiny_cnn]},
                          cv=KFold(2))
    # Cutouts as a list of NDData; labels as the array of labels_to_array.
    search.fit([NDData(im) for im in images[:48]], labels_to_array(truth[:48]))
    assert set(search.cv_results_["param_learning_rate"]) == {1e-3, 1e-2}
    assert list(search.cv_results_["param_architecture"]).count(_tiny_cnn) == 2
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert isinstance(search.predict(images[TEST]), QTable)
    expected = "tiny_cnn" if search.best_params_["architecture"] is _tiny_cnn else "light_cnn"
    assert search.best_estimator_.model_.name == expected


def _tiny_cnn(input_shape, n_outputs):
    """A user-supplied builder: any ``builder(input_shape, n_outputs) -> keras.Model``."""
    import keras

    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    return keras.Model(inputs, keras.layers.Dense(n_outputs)(x), name="tiny_cnn")


def test_grid_search_r2_scorer(survey):
    images, truth = survey
    est = make_regressor(max_epochs=1).set_output(predict="array")
    search = GridSearchCV(est, {"learning_rate": [1e-3, 3e-3]}, cv=2, scoring="r2")
    search.fit(images[:48], _array(truth[:48]))
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_._output_kind() == "array"


def test_thesis_network_and_training_defaults_follow_the_reference_thesis():
    from keras import layers

    from astromorphnet.models import build_thesis_cnn

    model = build_thesis_cnn((128, 128, 1))
    convs = [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]
    assert [c.filters for c in convs] == [16, 16, 32, 32, 64, 64, 128, 128, 256, 256]
    assert [c.kernel_size for c in convs] == [(4, 4)] * 8 + [(3, 3)] * 2
    assert [float(c.kernel_regularizer.l2) for c in convs] == pytest.approx([1e-4] * 10)
    # Listing 5.3's paddings: 128 -> 125 (valid conv) -> 62 -> 31 (valid pools) -> 16 -> 8 -> 4.
    assert model.get_layer("features").output.shape[1:] == (4 * 4 * 256,)
    assert [d.units for d in model.layers if isinstance(d, layers.Dense)] == [128, 64, 4]
    # The thesis's training settings are the defaults; its network is one
    # option (the residual network trains faster and better on CPUs).
    params = SersicCNNRegressor().get_params()
    assert (params["architecture"], params["learning_rate"], params["batch_size"],
            params["loss"], params["patience"], params["max_epochs"]) == (
        "resnet", 1e-4, 16, "laplace", 10, 100)


def test_mixed_precision_policy(survey):
    import keras

    images, truth = survey
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        reg = make_regressor(max_epochs=1).fit(images[:32], truth[:32])
        catalog = reg.predict(images[TEST])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert reg.model_.layers[1].compute_dtype == "float16"
    assert reg.model_.output.dtype == "float32"
    assert np.isfinite(_array(catalog)).all()

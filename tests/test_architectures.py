"""The named networks, and the residual CNN working with every seam that reads a network."""

import numpy as np
import pytest

from astromorphnet.models import (
    ARCHITECTURES,
    build_dann,
    build_ensemble,
    build_resnet_cnn,
    feature_layer,
    freeze_layers,
    get_architecture,
)

from .conftest import make_regressor

keras = pytest.importorskip("keras")


@pytest.mark.parametrize("size", [16, 32, 64, 128])
def test_resnet_takes_any_stamp_size_with_the_same_weights(size):
    model = build_resnet_cnn((size, size, 1), n_outputs=8)
    assert model.output_shape == (None, 8)
    assert feature_layer(model).output.shape == (None, 256)
    # Global pooling: the weights do not depend on the stamp size.
    assert model.count_params() == build_resnet_cnn((32, 32, 1), n_outputs=8).count_params()
    out = model.predict(np.zeros((2, size, size, 1), np.float32), verbose=0)
    assert out.shape == (2, 8) and out.dtype == np.float32


def test_resnet_is_registered_and_small():
    assert get_architecture("resnet") is build_resnet_cnn is ARCHITECTURES["resnet"]
    assert build_resnet_cnn((64, 64, 1)).count_params() <= 1_000_000


def test_resnet_outputs_float32_under_mixed_precision():
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = build_resnet_cnn((16, 16, 1))
    finally:
        keras.config.set_dtype_policy(policy)
    assert model.output.dtype == "float32"


def test_resnet_in_an_ensemble_and_a_dann():
    ensemble = build_ensemble(build_resnet_cnn, 3)((32, 32, 1), 4)
    assert ensemble.output_shape == (None, 12)
    assert feature_layer(ensemble).output.shape == (None, 3 * 256)
    dann = build_dann(build_resnet_cnn((32, 32, 1)))
    out = dann.predict(np.zeros((2, 32, 32, 1), np.float32), verbose=0)
    assert out["sersic"].shape == (2, 4) and out["domain"].shape == (2, 1)


def test_freeze_layers_counts_residual_stages_as_blocks():
    model = build_resnet_cnn((32, 32, 1))
    freeze_layers(model, "head")
    head = model.layers[model.layers.index(feature_layer(model)) + 1:]
    assert [layer for layer in model.layers if layer.trainable] == head
    assert [type(layer).__name__ for layer in head] == ["Dense", "Dense"]

    # The last stage: its two 3×3 convolutions and the 1×1 projection, all 128 wide;
    # the stem and the earlier stages stay frozen.
    freeze_layers(model, 1)
    trainable = [layer for layer in model.layers
                 if isinstance(layer, keras.layers.Conv2D) and layer.trainable]
    assert sorted(layer.kernel_size for layer in trainable) == [(1, 1), (3, 3), (3, 3)]
    assert {layer.filters for layer in trainable} == {128}
    assert freeze_layers(model, 3) < freeze_layers(model, 2) < freeze_layers(model, 1)
    with pytest.raises(ValueError, match="3 convolution blocks"):
        freeze_layers(model, 4)


def _blobs(n, size=24, seed=0):
    """Noisy elliptical Gaussians: labels (peak, radius, axis ratio) are known exactly.

    Pixels of order one, as the estimators' normalisation gives the network.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    labels = np.column_stack([rng.uniform(0.5, 2.0, n), rng.uniform(1.0, 4.0, n),
                              rng.uniform(0.3, 1.0, n)])
    angle = rng.uniform(0, np.pi, n)[:, None, None]
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    r, q = labels[:, 1, None, None], labels[:, 2, None, None]
    images = np.exp(-0.5 * ((u / r) ** 2 + (v / (q * r)) ** 2))
    images = labels[:, 0, None, None] * images + rng.normal(0, 0.05, images.shape)
    return images[..., None].astype(np.float32), labels.astype(np.float32)


def test_resnet_learns_size_and_shape_through_global_pooling():
    # Pooling over the whole map discards position; size and axis ratio must
    # still be learnt, which a toy with exact labels shows in seconds.
    from sklearn.metrics import r2_score

    x, y = _blobs(1200)
    x_test, y_test = _blobs(200, seed=1)
    mean, std = y.mean(0), y.std(0)
    keras.utils.set_random_seed(0)
    model = build_resnet_cnn(x.shape[1:], n_outputs=3)
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    model.fit(x, (y - mean) / std, epochs=6, batch_size=32, verbose=0)
    pred = model.predict(x_test, verbose=0) * std + mean
    r2 = r2_score(y_test, pred, multioutput="raw_values")
    assert np.all(r2 > 0.7), r2


def test_resnet_through_the_estimator_and_save_load(survey, tmp_path):
    images, truth = survey
    est = make_regressor(architecture="resnet", max_epochs=1).fit(images[:64], truth[:64])
    assert est.model_.name == "resnet_cnn"
    expected = est.predict(images[64:])
    est.save(tmp_path / "resnet.pkl")
    restored = type(est).load(tmp_path / "resnet.pkl")
    for column in ("mag", "r_eff", "sersic_n", "ellipticity"):
        np.testing.assert_array_equal(restored.predict(images[64:])[column], expected[column])

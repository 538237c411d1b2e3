"""Symmetry augmentation, test-time averaging and physically bounded outputs (issue 10)."""

import pickle

import numpy as np
import pytest
from keras import ops
from sklearn.utils._param_validation import InvalidParameterError

from astromorphnet._input import as_stamps
from astromorphnet import (AdversarialDARegressor, SersicCNNRegressor,
                           TransferLearningRegressor, load)
from astromorphnet.estimators import stack_domains
from astromorphnet.models import (BoundedLocation, RandomDihedral, build_ensemble,
                                  build_light_cnn, dihedral_transform, dihedral_transforms,
                                  n_symmetries, with_random_dihedral)
from astromorphnet.simulation import simulate_galaxies

from .conftest import FAST_RANGES, ZEROPOINT

#: An image whose eight flips/rotations all differ.
ASYMMETRIC = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)


def _numpy(tensor):
    return ops.convert_to_numpy(tensor)


def _views(x):
    return [_numpy(view) for view in dihedral_transforms(x)]


@pytest.fixture(scope="module")
def galaxies():
    return simulate_galaxies(48, stamp_size=16, ranges=FAST_RANGES, random_state=3)


def _regressor(**params):
    defaults = dict(architecture="light", max_epochs=2, batch_size=16, learning_rate=1e-3,
                    zeropoint=ZEROPOINT, random_state=0)
    return SersicCNNRegressor(**{**defaults, **params})


@pytest.fixture(scope="module")
def augmented(galaxies):
    """Trained with augmentation, averaging over views, bounded (the default)."""
    images, truth = galaxies
    return _regressor(augment=True, tta=True).fit(images, truth)


@pytest.fixture(scope="module")
def unbounded(galaxies):
    """A plain point network: linear output, trained without augmentation."""
    images, truth = galaxies
    return _regressor(bounded=False, loss="mae", augment=False).fit(images, truth)


def _adversarial_stamps():
    """Inputs no network was trained on: huge, negative, noise-only."""
    rng = np.random.default_rng(0)
    return np.concatenate([np.full((2, 16, 16), 1e7), np.full((2, 16, 16), -1e5),
                           rng.normal(0, 1e3, (2, 16, 16)), rng.normal(0, 1e-3, (2, 16, 16))])


def _widened_range(estimator, margin=0.05):
    """The training range widened by ``margin`` of its span, in the regressed space."""
    low, high = (np.array(bound, float) for bound in estimator.label_range_)
    for j, name in enumerate(estimator.targets_):
        encode, decode = ((np.log10, lambda v: 10.0 ** v) if name in estimator.log_targets_
                          else (lambda v: v, lambda v: v))
        span = encode(high[j]) - encode(low[j])
        low[j], high[j] = decode(encode(low[j]) - margin * span), decode(encode(high[j])
                                                                         + margin * span)
    return low, high


# -- RandomDihedral ------------------------------------------------------------------
def test_dihedral_transforms_are_the_eight_distinct_elements():
    views = _views(ASYMMETRIC)
    assert len({view.tobytes() for view in views}) == 8
    np.testing.assert_array_equal(views[0], ASYMMETRIC)
    assert any(np.array_equal(view, np.rot90(ASYMMETRIC, axes=(1, 2))) for view in views)


def test_random_dihedral_is_the_identity_at_inference():
    x = np.repeat(ASYMMETRIC, 32, axis=0)
    layer = RandomDihedral(seed=0)
    np.testing.assert_array_equal(_numpy(layer(x)), x)
    np.testing.assert_array_equal(_numpy(layer(x, training=False)), x)


def test_random_dihedral_draws_each_image_its_own_transform():
    x = np.repeat(ASYMMETRIC, 400, axis=0)
    out = _numpy(RandomDihedral(seed=0)(x, training=True))
    views = [view[0] for view in _views(ASYMMETRIC)]
    drawn = [next(i for i, view in enumerate(views) if np.array_equal(image, view))
             for image in out]  # StopIteration if an output is no transform of its input
    counts = np.bincount(drawn, minlength=8)
    assert (counts > 20).all(), counts  # uniform: ~50 each


def test_random_dihedral_is_reproducible_with_its_seed():
    x = np.repeat(ASYMMETRIC, 64, axis=0)
    first, again, other = (_numpy(RandomDihedral(seed=seed)(x, training=True))
                           for seed in (1, 1, 2))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_rectangular_images_get_their_four_flips():
    x = np.arange(24, dtype=np.float32).reshape(1, 4, 6, 1)
    views = _views(x)
    expected = [x, x[:, :, ::-1], x[:, ::-1], x[:, ::-1, ::-1]]  # 180°: both flips
    assert n_symmetries(x.shape) == 4 and len(views) == 4
    for view, want in zip(views, expected):
        np.testing.assert_array_equal(view, want)
    out = _numpy(RandomDihedral(seed=0)(np.repeat(x, 200, axis=0), training=True))
    drawn = [next(i for i, view in enumerate(views) if np.array_equal(image, view[0]))
             for image in out]
    assert (np.bincount(drawn, minlength=4) > 20).all()
    with pytest.raises(ValueError, match=r"element 5 transposes .* got shape \(1, 4, 6, 1\)"):
        dihedral_transform(x, 5)


@pytest.mark.parametrize("n_members", [1, 2])
def test_inserting_the_layer_keeps_the_network(n_members):
    model = build_ensemble(build_light_cnn, n_members)((16, 16, 1), 4)
    augmented = with_random_dihedral(model, seed=0)
    assert sum(isinstance(layer, RandomDihedral) for layer in augmented.layers) == 1
    assert augmented.get_layer("features") is not None  # domain adaptation still finds it
    x = np.random.default_rng(0).normal(size=(4, 16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(augmented.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)
    removed = with_random_dihedral(augmented, augment=False)
    assert not any(isinstance(layer, RandomDihedral) for layer in removed.layers)
    np.testing.assert_allclose(removed.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)


# -- estimators: augmentation and test-time averaging ---------------------------------
def test_augmented_estimator_trains_and_predicts(augmented, galaxies):
    assert any(isinstance(layer, RandomDihedral) for layer in augmented.model_.layers)
    catalog = augmented.predict(galaxies[0][:5])
    assert np.isfinite(np.asarray(catalog)).all() and len(catalog) == 5


def test_test_time_averaging_is_invariant_to_flips_and_rotations(augmented, galaxies):
    images = galaxies[0][:6]
    expected = augmented.predict(images)
    for view in _views(images[..., np.newaxis])[1:]:
        got = augmented.predict(view[..., 0])
        for name in ("mag", "r_eff", "sersic_n", "ellipticity", "sersic_n_err"):
            np.testing.assert_allclose(got[name].value, expected[name].value, rtol=1e-4,
                                       err_msg=name)


def test_without_averaging_predictions_depend_on_orientation(augmented, galaxies):
    # The counterpart of the invariance test: the network alone is not invariant.
    plain = pickle.loads(pickle.dumps(augmented)).set_params(tta=False)
    images = galaxies[0][:6]
    rotated = np.rot90(images, axes=(1, 2))
    assert not np.allclose(plain.predict(rotated)["sersic_n"].value,
                           plain.predict(images)["sersic_n"].value, rtol=1e-4)


def _network_input(estimator, images):
    return estimator._read(as_stamps(images), 0, len(images))[0]


def test_averaging_a_likelihood_head_adds_the_spread_over_views(augmented, galaxies):
    x = _network_input(augmented, galaxies[0][:6])
    outputs = [augmented._network_predict(view) for view in _views(x)]
    loc, scale, family = augmented._loc_scale(augmented._average_views(x))
    members = np.stack([augmented._loc_scale(out)[0] for out in outputs], axis=1)
    assert family == "gaussian"  # moment-matched, as an ensemble's members
    np.testing.assert_allclose(loc, members.mean(axis=1), rtol=1e-5, atol=1e-6)
    assert (scale >= members.std(axis=1) * (1 - 1e-5)).all()  # the spread is included
    assert not np.allclose(loc, members[:, 0])  # not the identity view alone


def test_averaging_a_point_network_is_the_mean_over_views(unbounded, galaxies):
    x = _network_input(unbounded, galaxies[0][:4])
    outputs = [unbounded._network_predict(view) for view in _views(x)]
    np.testing.assert_allclose(unbounded._average_views(x), np.mean(outputs, axis=0),
                               rtol=1e-5, atol=1e-6)


def test_fine_tuning_adds_the_augmentation_to_a_pretrained_network(unbounded, galaxies):
    # (Removing it, augment=False on an augmented network: with_random_dihedral above.)
    images, truth = galaxies
    tuned = TransferLearningRegressor(unbounded, augment=True, tta=True, max_epochs=1,
                                      validation_fraction=0, random_state=0,
                                      zeropoint=ZEROPOINT).fit(images[:16], truth[:16])
    assert any(isinstance(layer, RandomDihedral) for layer in tuned.model_.layers)
    assert not any(isinstance(layer, RandomDihedral) for layer in unbounded.model_.layers)
    rotated = np.rot90(images[:4], axes=(1, 2))
    np.testing.assert_allclose(np.asarray(tuned.predict(rotated)),
                               np.asarray(tuned.predict(images[:4])), rtol=1e-4)


def test_domain_adaptation_with_augmentation_and_bounds(galaxies):
    images, truth = galaxies
    X, y, domain = stack_domains(images[:16], truth[:16], images[32:])
    reg = AdversarialDARegressor(supervised=False, architecture="light", max_epochs=1,
                                 validation_fraction=0,
                                 augment=True, tta=True, zeropoint=ZEROPOINT,
                                 random_state=0).fit(X, y, sample_domain=domain)
    layers = reg.model_.layers
    assert any(isinstance(layer, RandomDihedral) for layer in layers)
    assert any(isinstance(layer, BoundedLocation) for layer in layers)
    assert reg.predict(_adversarial_stamps())["ellipticity"].value.max() < 1


# -- bounded outputs ------------------------------------------------------------------
def test_bounded_location_maps_locations_only():
    x = np.array([[-50.0, 0.0, 50.0, 7.0, -7.0, 3.0]], np.float32)
    out = _numpy(BoundedLocation([-1.0, -1.0, -1.0], [2.0, 2.0, 2.0])(x))
    np.testing.assert_allclose(out[0, :3], [-1.0, 0.0, 2.0], atol=1e-5)
    np.testing.assert_array_equal(out[0, 3:], x[0, 3:])  # log-scales pass
    # The identity well inside the bounds; strictly inside them however far out.
    inside = np.linspace(-0.4, 1.4, 12, dtype=np.float32)[:, None]
    np.testing.assert_allclose(_numpy(BoundedLocation([-1.0], [2.0])(inside)), inside,
                               atol=1e-3)
    extreme = np.array([[-1e30], [-1e6], [1e6], [1e30]], np.float32)
    out = _numpy(BoundedLocation([-1.0], [2.0])(extreme))
    assert np.isfinite(out).all() and (out >= -1.0).all() and (out <= 2.0).all()
    np.testing.assert_allclose(out[:, 0], [-1.0, -1.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="low < high"):
        BoundedLocation([1.0], [0.0])


def test_bounded_predictions_stay_in_range_whatever_the_input(augmented):
    catalog = augmented.predict(_adversarial_stamps())
    low, high = _widened_range(augmented)
    for j, name in enumerate(augmented.targets_):
        values = catalog[name].value
        if name == "ellipticity":
            assert (values >= 0).all() and (values < 1).all(), values
        else:
            assert (values >= low[j] - 1e-9).all() and (values <= high[j] + 1e-9).all(), name


def test_unbounded_network_leaves_the_range_on_the_same_input(unbounded):
    # bounded=False is the plain network: a linear output, nothing clipped.
    assert not any(isinstance(layer, BoundedLocation) for layer in unbounded.model_.layers)
    assert ([type(layer) for layer in unbounded.model_.layers]
            == [type(layer) for layer in build_light_cnn((16, 16, 1)).layers])
    labels = np.asarray(unbounded.predict(_adversarial_stamps()))
    low, high = _widened_range(unbounded)
    assert ((labels < low) | (labels > high)).any()


def test_bounds_survive_save_and_load(augmented, tmp_path):
    # The network is rebuilt from its .keras bytes; tests/test_estimator.py also
    # reloads a (bounded, by default) estimator in a fresh process.
    stamps = _adversarial_stamps()
    augmented.save(tmp_path / "model.pkl")
    loaded = load(tmp_path / "model.pkl")
    assert loaded.tta and loaded.augment and loaded.bounded
    bounds = [layer.get_config() for layer in loaded.model_.layers
              if isinstance(layer, BoundedLocation)]
    assert [(c["low"], c["high"]) for c in bounds] == [augmented._network_bounds_]
    assert any(isinstance(layer, RandomDihedral) for layer in loaded.model_.layers)
    np.testing.assert_array_equal(np.asarray(loaded.predict(stamps)),
                                  np.asarray(augmented.predict(stamps)))


def test_files_saved_before_these_parameters_load_as_they_were_trained(unbounded, tmp_path):
    state = unbounded.__getstate__()
    for name in ("augment", "tta", "bounded"):
        del state[name]
    old = object.__new__(SersicCNNRegressor)
    old.__setstate__(state)
    # Not the defaults: without augmentation, with a linear output.
    assert (old.augment, old.tta, old.bounded) == (False, False, False)
    np.testing.assert_array_equal(np.asarray(old.predict(_adversarial_stamps())),
                                  np.asarray(unbounded.predict(_adversarial_stamps())))


# -- parameter validation -------------------------------------------------------------
@pytest.mark.parametrize("estimator, param", [
    (SersicCNNRegressor(), "augment"), (SersicCNNRegressor(), "tta"),
    (SersicCNNRegressor(), "bounded"), (TransferLearningRegressor(), "augment"),
    (TransferLearningRegressor(), "tta"), (AdversarialDARegressor(), "bounded")])
def test_parameters_are_validated(estimator, param):
    estimator.set_params(**{param: "yes"})
    with pytest.raises(InvalidParameterError, match=f"'{param}' parameter .* must be an "
                                                     "instance of 'bool'"):
        estimator.fit(np.zeros((4, 16, 16)), np.zeros((4, 4)))


def test_rectangular_cutouts_are_augmented_and_averaged_over_their_flips(galaxies):
    images, truth = galaxies
    reg = _regressor(image_size=(16, 12), augment=True, tta=True).fit(images[:16], truth[:16])
    assert any(isinstance(layer, RandomDihedral) for layer in reg.model_.layers)
    crops = images[:4, :, 2:14]
    flipped = np.asarray(reg.predict(crops[:, ::-1, ::-1]))  # 180°: one of the four
    np.testing.assert_allclose(flipped, np.asarray(reg.predict(crops)), rtol=1e-4)

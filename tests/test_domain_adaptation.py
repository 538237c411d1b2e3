"""Transfer learning, adversarial domain adaptation and the real-like target domain."""

import pickle
import subprocess
import sys

import numpy as np
import pytest
import sklearn
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline

from astromorphnet import AdversarialDARegressor, TransferLearningRegressor, stack_domains
from astromorphnet.catalog import labels_to_array
from astromorphnet.preprocessing import CutoutCropper
from astromorphnet.simulation import simulate_galaxies, simulate_real_like

from .conftest import ZEROPOINT, make_regressor

tf = pytest.importorskip("tensorflow")


def make_dann(**params):
    defaults = dict(architecture="light", max_epochs=2, batch_size=16, learning_rate=1e-3,
                    zeropoint=ZEROPOINT, random_state=0)
    return AdversarialDARegressor(**{**defaults, **params})


def _values(catalog, columns=("mag", "r_eff", "sersic_n", "ellipticity")):
    return np.column_stack([catalog[c].value for c in columns])


# -- gradient reversal -----------------------------------------------------------
@pytest.mark.parametrize("strength", [0.0, 0.3, 2.0])
def test_gradient_reversal_flips_and_scales_the_gradient(strength):
    from astromorphnet.models import GradientReversal

    x = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3))
    layer = GradientReversal(strength)
    with tf.GradientTape() as tape:
        out = layer(x)
        loss = tf.reduce_sum(out * out)
    np.testing.assert_array_equal(out.numpy(), x.numpy())  # identity forward
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), -strength * 2 * x.numpy())


def test_reversal_schedule_warms_up_to_strength():
    from astromorphnet.models import GradientReversal, ReversalSchedule

    layer = GradientReversal(1.0)
    layer.build((None, 3))
    schedule = ReversalSchedule(layer, 0.5, warmup_steps=100)
    values = [schedule.value(step) for step in (0, 10, 50, 100, 1000)]
    assert values[0] == 0 and values[-1] == values[-2]
    assert np.all(np.diff(values[:4]) > 0) and values[3] == pytest.approx(0.5, rel=1e-3)
    assert ReversalSchedule(layer, 0.5, warmup_steps=0).value(0) == 0.5


def test_balanced_batches_hold_both_domains_equally():
    from astromorphnet.estimators._data import BalancedDomainSequence

    target = np.r_[np.zeros(50, bool), np.ones(7, bool)]
    x = np.arange(57, dtype=np.float32)
    seq = BalancedDomainSequence(x, {"d": target.astype(float)}, {"d": np.ones(57)}, target,
                                 batch_size=10, seed=0)
    assert len(seq) == 10  # one pass through the 50 source rows, 5 at a time
    for i in range(len(seq)):
        _, out, _ = seq[i]
        assert out["d"].sum() == 5 and len(out["d"]) == 10
    seen = np.concatenate([seq[i][0] for i in range(len(seq))])
    assert set(seen[seen < 50].astype(int)) == set(range(50))


# -- adversarial DA -------------------------------------------------------------
def test_semi_supervised_ignores_target_labels(domains):
    X, y, domain, real, _ = domains
    other = y.copy()
    other[domain < 0] = np.random.default_rng(0).permutation(other[domain < 0])
    unlabelled = y.copy()
    unlabelled[domain < 0] = np.nan
    preds = [_values(make_dann(supervised=False).fit(X, labels, sample_domain=domain)
                     .predict(real)) for labels in (y, other, unlabelled)]
    np.testing.assert_array_equal(preds[0], preds[1])
    np.testing.assert_array_equal(preds[0], preds[2])
    # The same change does matter when supervised (so the check above can fail).
    supervised = [_values(make_dann(supervised=True).fit(X, labels, sample_domain=domain)
                          .predict(real)) for labels in (y, other)]
    assert not np.allclose(supervised[0], supervised[1])


def test_dann_infers_domains_from_nan_labels(domains):
    X, y, domain, real, _ = domains
    unlabelled = y.copy()
    unlabelled[domain < 0] = np.nan
    with_domain = make_dann(supervised=False).fit(X, unlabelled, sample_domain=domain)
    without = make_dann(supervised=False).fit(X, unlabelled)
    np.testing.assert_array_equal(_values(with_domain.predict(real)),
                                  _values(without.predict(real)))
    history = without.history_
    assert {"sersic_loss", "domain_loss", "domain_binary_accuracy",
            "val_sersic_loss"} <= set(history)


@pytest.mark.parametrize("kwargs, match", [
    (dict(sample_domain=np.ones(80)), "no target rows"),
    (dict(sample_domain=-np.ones(80)), "no source rows"),
    (dict(sample_domain=np.ones(3)), r"one entry per cutout, shape \(80,\)"),
    (dict(sample_domain=np.zeros(80)), "0, NaN, fractions and non-numbers are neither"),
])
def test_dann_domain_errors(domains, kwargs, match):
    X, y, *_ = domains
    with pytest.raises(ValueError, match=match):
        make_dann().fit(X, y, **kwargs)


def test_dann_rejects_unlabelled_source_and_bad_parameters(domains):
    X, y, domain, *_ = domains
    bad = y.copy()
    bad[0, 1] = np.nan
    with pytest.raises(ValueError, match="source .* rows must be fully labelled"):
        make_dann().fit(X, bad, sample_domain=domain)
    with pytest.raises(ValueError, match=r"The 'alpha' parameter of AdversarialDARegressor "
                                         r"must be a float in the range \(0(.0)?, 1(.0)?\]"):
        make_dann(alpha=1.5).fit(X, y, sample_domain=domain)
    with pytest.raises(ValueError, match="The 'reversal_strength' parameter of "
                                         "AdversarialDARegressor must be"):
        make_dann(reversal_strength=-1).fit(X, y, sample_domain=domain)
    with pytest.raises(ValueError, match="no layer named 'features'"):
        from astromorphnet.models import build_light_cnn

        def unnamed(shape, n):
            model = build_light_cnn(shape, n)
            model.get_layer("features").name = "flat"
            return model

        make_dann(architecture=unnamed).fit(X, y, sample_domain=domain)


def test_dann_score_judges_target_rows_only(domains):
    X, y, domain, real, real_truth = domains
    est = make_dann(reversal_warmup=1).fit(X, y, sample_domain=domain)
    target = domain < 0
    assert est.score(X, y, sample_domain=domain) == pytest.approx(
        est.score(real, real_truth), abs=1e-12)
    assert est.score(X, y) != pytest.approx(est.score(X[target], y[target]), abs=1e-12)
    unlabelled = y.copy()
    unlabelled[target] = np.nan
    with pytest.raises(ValueError, match="no labelled target rows to score"):
        est.score(X, unlabelled, sample_domain=domain)


def test_dann_in_pipeline_and_grid_search_with_metadata_routing(domains):
    X, y, domain, *_ = domains
    with sklearn.config_context(enable_metadata_routing=True):
        dann = make_dann(max_epochs=1).set_fit_request(sample_domain=True)
        dann.set_score_request(sample_domain=True)
        pipe = make_pipeline(CutoutCropper(size=28), dann)
        cv = list(StratifiedKFold(2, shuffle=True, random_state=0).split(X, domain))
        grid = {"adversarialdaregressor__learning_rate": [1e-3, 3e-3]}
        search = GridSearchCV(pipe, grid, cv=cv, refit=False).fit(X, y, sample_domain=domain)
        # One fold's score by hand: fit on the fold's rows of both domains,
        # score on its target test rows only.
        train, test = cv[0]
        manual = clone(pipe).set_params(adversarialdaregressor__learning_rate=3e-3)
        manual.fit(X[train], y[train], sample_domain=domain[train])
        target_test = test[domain[test] < 0]
        expected = manual.score(X[target_test], y[target_test])
    assert manual[-1].input_shape_ == (28, 28)
    assert search.cv_results_["split0_test_score"][1] == pytest.approx(expected, abs=1e-6)


def test_dann_needs_a_validation_split_of_each_domain(domains):
    X, y, domain, *_ = domains
    keep = np.r_[np.flatnonzero(domain > 0), np.flatnonzero(domain < 0)[:1]]
    with pytest.raises(ValueError, match="cannot hold out a validation split stratified on "
                                         "domain"):
        make_dann().fit(X[keep], y[keep], sample_domain=domain[keep])
    assert make_dann(max_epochs=1, validation_fraction=0).fit(
        X[keep], y[keep], sample_domain=domain[keep]).n_epochs_ == 1


def test_dann_save_load_in_a_fresh_process(domains, tmp_path):
    X, y, domain, real, _ = domains
    est = make_dann(max_epochs=1).fit(X, y, sample_domain=domain)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(_values(restored.predict(real)), _values(est.predict(real)))
    assert restored.model_.get_layer("gradient_reversal").strength.numpy() == 1.0
    est.save(tmp_path / "dann.pkl")
    np.save(tmp_path / "real.npy", real)
    np.save(tmp_path / "expected.npy", _values(est.predict(real)))
    script = (
        "import numpy as np, sys\n"
        "from astromorphnet import AdversarialDARegressor\n"
        "d = sys.argv[1]\n"
        "est = AdversarialDARegressor.load(d + '/dann.pkl')\n"
        "cat = est.predict(np.load(d + '/real.npy'))\n"
        "got = np.column_stack([cat[c].value for c in est.targets_])\n"
        "assert np.array_equal(got, np.load(d + '/expected.npy')), 'predictions differ'\n")
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True)


# -- transfer learning ----------------------------------------------------------
@pytest.fixture(scope="module")
def pretrained(survey):
    images, truth = survey
    return make_regressor(max_epochs=2).fit(images[:48], truth[:48])


def test_transfer_learning_leaves_pretrained_untouched(pretrained, domains):
    _, _, _, real, real_truth = domains
    before = [w.copy() for w in pretrained.model_.get_weights()]
    params = pretrained.get_params()
    scaler_mean = pretrained.target_scaler_.mean_.copy()
    tl = TransferLearningRegressor(pretrained, max_epochs=2, zeropoint=ZEROPOINT,
                                   random_state=0).fit(real, real_truth)
    assert tl.pretrained_ is pretrained and tl.model_ is not pretrained.model_
    for a, b in zip(before, pretrained.model_.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert pretrained.get_params() == params
    np.testing.assert_array_equal(pretrained.target_scaler_.mean_, scaler_mean)
    assert not all(np.array_equal(a, b) for a, b in zip(before, tl.model_.get_weights()))
    assert tl.n_epochs_ == 2 and tl.target_scaler_ is not pretrained.target_scaler_


@pytest.mark.parametrize("trainable", ["head", 1])
def test_transfer_learning_freezes_layers(pretrained, domains, trainable):
    from astromorphnet.models import freeze_layers

    _, _, _, real, real_truth = domains
    tl = TransferLearningRegressor(pretrained, trainable=trainable, max_epochs=1,
                                   zeropoint=ZEROPOINT, random_state=0).fit(real, real_truth)
    n_frozen = freeze_layers(pretrained.model_.__class__.from_config(
        pretrained.model_.get_config()), trainable)
    for old, new in zip(pretrained.model_.layers[:n_frozen], tl.model_.layers[:n_frozen]):
        for a, b in zip(old.get_weights(), new.get_weights()):
            np.testing.assert_array_equal(a, b)
    changed = [not all(np.array_equal(a, b) for a, b in zip(o.get_weights(), n.get_weights()))
               for o, n in zip(pretrained.model_.layers[n_frozen:], tl.model_.layers[n_frozen:])
               if o.get_weights()]
    assert any(changed)


def test_freeze_layers_errors():
    from astromorphnet.models import build_light_cnn, freeze_layers

    model = build_light_cnn((32, 32, 1))
    with pytest.raises(ValueError, match="has 3 convolution blocks; choose 0 to 3"):
        freeze_layers(model, 4)
    with pytest.raises(ValueError, match="trainable must be 'all', 'head'"):
        freeze_layers(model, "tail")
    assert freeze_layers(model, 3) == 0 == freeze_layers(model, "all")


def test_transfer_learning_pretrains_from_source_rows(domains):
    X, y, domain, real, real_truth = domains
    tl = TransferLearningRegressor(make_regressor(max_epochs=1), max_epochs=1,
                                   zeropoint=ZEROPOINT, random_state=0)
    tl.fit(X, y, sample_domain=domain)
    assert tl.pretrained_.n_epochs_ == 1 and tl.pretrained is not tl.pretrained_
    assert tl.score(X, y, sample_domain=domain) == pytest.approx(tl.score(real, real_truth))


def test_transfer_learning_clone_and_frozen_estimator(pretrained, domains, tmp_path):
    _, _, _, real, real_truth = domains
    cloned = clone(TransferLearningRegressor(pretrained, max_epochs=1, zeropoint=ZEROPOINT))
    with pytest.raises(ValueError, match="not fitted and there are no source rows"):
        cloned.fit(real, real_truth)
    frozen = clone(TransferLearningRegressor(FrozenEstimator(pretrained), max_epochs=1,
                                             zeropoint=ZEROPOINT, random_state=0))
    labels = labels_to_array(real_truth)  # scikit-learn cannot split astropy tables
    search = GridSearchCV(frozen, {"learning_rate": [1e-4, 1e-3]}, cv=2).fit(real, labels)
    assert search.best_estimator_.pretrained_ is pretrained
    pretrained.save(tmp_path / "sim.pkl")
    from_path = TransferLearningRegressor(str(tmp_path / "sim.pkl"), max_epochs=1,
                                          zeropoint=ZEROPOINT, random_state=0)
    from_obj = TransferLearningRegressor(pretrained, max_epochs=1, zeropoint=ZEROPOINT,
                                         random_state=0)
    np.testing.assert_array_equal(_values(from_path.fit(real, real_truth).predict(real)),
                                  _values(from_obj.fit(real, real_truth).predict(real)))
    restored = pickle.loads(pickle.dumps(from_obj))
    np.testing.assert_array_equal(_values(restored.predict(real)),
                                  _values(from_obj.predict(real)))


def test_transfer_learning_errors(pretrained, domains):
    _, _, _, real, real_truth = domains
    with pytest.raises(ValueError, match="The 'pretrained' parameter of "
                                         "TransferLearningRegressor must be"):
        TransferLearningRegressor("not-a-regressor".split()).fit(real, real_truth)
    with pytest.raises(TypeError, match="pretrained must be a SersicCNNRegressor"):
        TransferLearningRegressor(LinearRegression()).fit(real, real_truth)
    labels = np.full((len(real), 4), np.nan)
    with pytest.raises(ValueError, match="no labelled target rows to fine-tune on"):
        TransferLearningRegressor(pretrained, zeropoint=ZEROPOINT).fit(real, labels)
    with pytest.raises(ValueError, match="needs the cutouts' AB zeropoint"):
        TransferLearningRegressor(pretrained, max_epochs=1).fit(real, real_truth)


# -- the real-like target domain -----------------------------------------------
def test_real_like_target_differs_from_training_simulations():
    # Faint galaxies: the corners hold noise only (no PSF wings).
    ranges = {"mag": (24, 25), "r_eff": (2, 3), "sersic_n": (1, 1.5)}
    sims, _ = simulate_galaxies(8, stamp_size=48, ranges=ranges, random_state=0)
    real, truth = simulate_real_like(8, stamp_size=48, ranges=ranges, random_state=0)
    assert truth.meta["stand_in_for_real_data"] and "knot_fraction" in truth.colnames

    def corner_noise(images):
        corner = images[:, :12, :12]
        lag = np.mean(corner[:, :, 1:] * corner[:, :, :-1]) / np.mean(corner * corner)
        return corner.std(), lag

    (sim_std, sim_lag), (real_std, real_lag) = corner_noise(sims), corner_noise(real)
    assert abs(sim_lag) < 0.1 < real_lag  # correlated noise
    assert real_std > 1.2 * sim_std


def test_transfer_learning_default_pretraining_reads_cutouts_like_fine_tuning():
    tl = TransferLearningRegressor(zeropoint=ZEROPOINT, pixel_scale=0.06, random_state=3)
    base, fitted = tl._pretrained_estimator()
    assert not fitted
    assert (base.zeropoint, base.pixel_scale, base.random_state) == (ZEROPOINT, 0.06, 3)


def test_transfer_learning_chains_and_validates_sample_weight(pretrained, domains):
    _, _, _, real, real_truth = domains
    first = TransferLearningRegressor(pretrained, max_epochs=1, zeropoint=ZEROPOINT,
                                      random_state=0).fit(real, real_truth)
    second = TransferLearningRegressor(first, max_epochs=1, zeropoint=ZEROPOINT,
                                       random_state=0).fit(real, real_truth)
    assert second.model_.loss.name == "laplace_nll" and pretrained.loss == "laplace"
    assert second.likelihood_ == first.likelihood_ == "laplace"
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(32,\)"):
        TransferLearningRegressor(pretrained, zeropoint=ZEROPOINT).fit(
            real, real_truth, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="sample_weight must be finite and non-negative"):
        TransferLearningRegressor(pretrained, zeropoint=ZEROPOINT).fit(
            real, real_truth, sample_weight=-np.ones(32))


def test_stack_domains_keeps_masks_and_checks_lengths():
    source = np.ma.MaskedArray(np.ones((2, 8, 8)), mask=np.zeros((2, 8, 8), bool))
    target = np.ones((3, 8, 8))
    source.mask[1, 0, 0] = True
    X, y, domain = stack_domains(source, np.full((2, 4), 0.5), target)
    assert isinstance(X, np.ma.MaskedArray) and X.mask.sum() == 1 and X.mask[1, 0, 0]
    assert domain.tolist() == [1, 1, -1, -1, -1] and np.isnan(y[2:]).all()
    with pytest.raises(ValueError, match="the target domain has 3 cutouts but 2 label rows"):
        stack_domains(source, np.full((2, 4), 0.5), target, np.full((2, 4), 0.5))

"""Feature-alignment losses (DANN, Deep CORAL, MMD) and their seam in AdversarialDARegressor."""

import pickle
import subprocess
import sys

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from astromorphnet import AdversarialDARegressor

from .conftest import ZEROPOINT

keras = pytest.importorskip("keras")

from astromorphnet.models import (  # noqa: E402  (needs Keras)
    AlignmentLoss,
    CORALAlignment,
    DANNAlignment,
    MMDAlignment,
    build_aligned,
    get_alignment,
)


# -- NumPy references --------------------------------------------------------------
def coral_reference(source, target, source_weight=None, target_weight=None):
    """Sun & Saenko (2016): ||C_s - C_t||_F^2 / (4 d^2), unbiased (weighted) covariances."""
    gap = (np.cov(source, rowvar=False, aweights=source_weight)
           - np.cov(target, rowvar=False, aweights=target_weight))
    return np.sum(gap ** 2) / (4 * source.shape[1] ** 2)


def mmd_reference(x, is_target, weight, n_kernels=5):
    """Biased weighted MMD^2, mean of Gaussian kernels around the median squared distance."""
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    n = len(x)
    median = np.sort(d2[~np.eye(n, dtype=bool)])[n * (n - 1) // 2]
    kernel = np.mean([np.exp(-d2 / (2 * median * 2.0 ** k))
                      for k in range(-(n_kernels // 2), n_kernels - n_kernels // 2)], axis=0)
    a = np.where(is_target, 0, weight) / weight[~is_target].sum()
    b = np.where(is_target, weight, 0) / weight[is_target].sum()
    return (a - b) @ kernel @ (a - b)


@pytest.fixture
def pair():
    """Rows of two domains (10 source, 8 target, 3 features), and positive weights."""
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(size=(10, 3)), 1.5 * rng.normal(size=(8, 3)) + 0.7])
    is_target = np.r_[np.zeros(10, bool), np.ones(8, bool)]
    return x.astype(np.float32), is_target, rng.uniform(0.2, 2.0, 18).astype(np.float32)


def _loss(alignment, x, is_target, weight=None):
    return float(alignment(is_target.astype(np.float32), x, weight))


def test_coral_matches_numpy(pair):
    x, t, w = pair
    assert _loss(CORALAlignment(), x, t) == pytest.approx(coral_reference(x[~t], x[t]),
                                                          rel=1e-4)
    assert _loss(CORALAlignment(), x, t, w) == pytest.approx(
        coral_reference(x[~t], x[t], w[~t], w[t]), rel=1e-4)


def test_mmd_matches_numpy(pair):
    x, t, w = pair
    assert _loss(MMDAlignment(), x, t) == pytest.approx(
        mmd_reference(x, t, np.ones(len(x))), rel=1e-4)
    assert _loss(MMDAlignment(n_kernels=3), x, t, w) == pytest.approx(
        mmd_reference(x, t, w, n_kernels=3), rel=1e-4)


def test_dann_loss_is_the_mean_cross_entropy_on_balanced_batches():
    p = np.random.default_rng(1).uniform(0.05, 0.95, (16, 1)).astype(np.float32)
    domain = np.repeat([0.0, 1.0], 8).astype(np.float32)
    expected = keras.losses.BinaryCrossentropy()(domain[:, None], p)
    assert float(DANNAlignment()(domain, p)) == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize("alignment", [DANNAlignment(), CORALAlignment(), MMDAlignment()],
                         ids=repr)
def test_sample_weights_are_importance_weights_within_each_domain(alignment, pair):
    x, t, w = pair
    if isinstance(alignment, DANNAlignment):
        x = 1 / (1 + np.exp(-x[:, :1]))  # a classifier's probabilities
    base = _loss(alignment, x, t, w)
    # Scaling one domain's weights changes nothing ...
    assert _loss(alignment, x, t, w * np.where(t, 7.0, 1.0)) == pytest.approx(base, rel=1e-5)
    if isinstance(alignment, MMDAlignment):
        return  # ... and (for per-row statistics) a zero weight drops the row.
    keep = np.arange(len(x)) != 3
    dropped = w.copy()
    dropped[3] = 0
    assert _loss(alignment, x, t, dropped) == pytest.approx(
        _loss(alignment, x[keep], t[keep], w[keep]), rel=1e-5)


@pytest.mark.parametrize("alignment", [CORALAlignment(), MMDAlignment()], ids=repr)
def test_loss_is_zero_for_identical_domains_and_positive_for_shifted(alignment, pair):
    x, t, _ = pair
    same = np.vstack([x[:9], x[:9]])
    assert abs(_loss(alignment, same, np.repeat([False, True], 9))) < 1e-6
    assert _loss(alignment, x, t) > 1e-3
    # A batch holding a single domain has nothing to align.
    assert _loss(alignment, x, np.zeros(len(x), bool)) == 0.0


# -- training on a toy pair ----------------------------------------------------------
def _toy_pair(rng, n=96):
    """Two signal coordinates shared by both domains; a nuisance one shifted and rescaled."""
    signal = rng.normal(size=(2 * n, 2))
    nuisance = rng.normal(size=2 * n)
    nuisance[n:] = 3.0 * nuisance[n:] + 2.0
    x = np.column_stack([signal, nuisance]).astype(np.float32)
    return x, signal.sum(axis=1, keepdims=True).astype(np.float32), np.arange(2 * n) >= n


def _measured_discrepancy(features, is_target):
    """Scale-free gaps between the domains' feature means and covariances."""
    s, t = features[~is_target], features[is_target]
    pooled = (np.cov(s, rowvar=False) + np.cov(t, rowvar=False)) / 2
    mean_gap = np.sum((s.mean(0) - t.mean(0)) ** 2) / np.trace(pooled)
    cov_gap = (np.linalg.norm(np.cov(s, rowvar=False) - np.cov(t, rowvar=False))
               / np.linalg.norm(pooled))
    return mean_gap + cov_gap


def _train_toy(alignment, alpha, steps=200):
    # Seeds every initialiser (the domain classifier's too): one reproducible game.
    keras.utils.set_random_seed(0)
    x, y, t = _toy_pair(np.random.default_rng(0))
    inputs = keras.Input((3,))
    # As many features as inputs: the regression alone can keep the nuisance in them.
    features = keras.layers.Dense(3, name="features",
                                  kernel_initializer=keras.initializers.GlorotUniform(0))(inputs)
    output = keras.layers.Dense(1, kernel_initializer=keras.initializers.GlorotUniform(1))(features)
    model = build_aligned(keras.Model(inputs, output), alignment)
    model.compile(optimizer=keras.optimizers.Adam(0.02),
                  loss={"sersic": "mse", "domain": alignment},
                  loss_weights={"sersic": alpha, "domain": 1 - alpha})
    extractor = keras.Model(inputs, features)
    before = _measured_discrepancy(extractor.predict(x, verbose=0), t)
    # One epoch of full-batch steps: Keras's per-epoch overhead would dominate otherwise.
    model.fit(np.tile(x, (steps, 1)),
              {"sersic": np.tile(y, (steps, 1)), "domain": np.tile(t, steps)[:, None] * 1.0},
              sample_weight={"sersic": np.tile(~t, steps) * 1.0, "domain": np.ones(steps * len(x))},
              batch_size=len(x), epochs=1, shuffle=False, verbose=0,
              callbacks=alignment.callbacks(model, steps))
    return before, _measured_discrepancy(extractor.predict(x, verbose=0), t)


@pytest.fixture(scope="module")
def unaligned():
    """The measured discrepancy after training on the regression alone."""
    return _train_toy(CORALAlignment(), alpha=1.0)[1]


# DANN's warm-up of the reversal (over the whole run) keeps its adversarial game stable.
@pytest.mark.parametrize("alignment", [DANNAlignment(units=(16,), warmup=1), CORALAlignment(),
                                       MMDAlignment()], ids=repr)
def test_alignment_shrinks_a_measured_domain_discrepancy(alignment, unaligned):
    """The nuisance coordinate tells the domains apart: alignment learns to drop it."""
    before, after = _train_toy(alignment, alpha=0.5)
    assert after < 0.5 * before
    assert after < 0.5 * unaligned


# -- the estimator ------------------------------------------------------------------
def make_da(**params):
    defaults = dict(architecture="light", image_size=16, max_epochs=1, batch_size=16,
                    learning_rate=1e-3, zeropoint=ZEROPOINT, random_state=0)
    return AdversarialDARegressor(**{**defaults, **params})


def _values(catalog):
    return np.column_stack([catalog[c].value for c in ("mag", "r_eff", "sersic_n", "ellipticity")])


@keras.saving.register_keras_serializable(package="astromorphnet_tests")
class MeanAlignment(AlignmentLoss):
    """A further method in a few lines: match the domains' mean features."""

    def discrepancy(self, outputs, source_weight, target_weight):
        gap = keras.ops.matmul(source_weight - target_weight, outputs)
        return keras.ops.sum(gap ** 2)


@pytest.fixture(scope="module")
def fit_da(domains):
    """Fit (once per setting) an estimator on the two domains."""
    fitted = {}

    def fit(alignment, supervised):
        key = (str(alignment), supervised)
        if key not in fitted:
            X, y, domain, *_ = domains
            fitted[key] = make_da(alignment=alignment, supervised=supervised).fit(
                X, y, sample_domain=domain)
        return fitted[key]
    return fit


# Each method once and each mode twice (DANN's are in test_domain_adaptation.py).
@pytest.mark.parametrize("alignment, supervised", [
    ("coral", True), ("mmd", False), (MeanAlignment(), False)], ids=str)
def test_estimator_fits_and_predicts_with_each_alignment(fit_da, domains, alignment, supervised):
    real = domains[3]
    est = fit_da(alignment, supervised)
    assert np.isfinite(est.history_["domain_loss"]).all()
    assert isinstance(est.alignment_, type(get_alignment(alignment)))
    assert est.alignment_ is not alignment
    assert est.model_.output["domain"].shape[1] > 1  # the features themselves
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(_values(restored.predict(real)), _values(est.predict(real)))


def test_mmd_estimator_reloads_in_a_fresh_process(fit_da, domains, tmp_path):
    real = domains[3]
    est = fit_da("mmd", False)
    est.save(tmp_path / "mmd.pkl")
    np.save(tmp_path / "real.npy", real)
    np.save(tmp_path / "expected.npy", _values(est.predict(real)))
    script = (
        "import numpy as np, sys\n"
        "from astromorphnet import AdversarialDARegressor\n"
        "d = sys.argv[1]\n"
        "est = AdversarialDARegressor.load(d + '/mmd.pkl')\n"
        "assert type(est.model_.loss['domain']).__name__ == 'MMDAlignment'\n"
        "cat = est.predict(np.load(d + '/real.npy'))\n"
        "got = np.column_stack([cat[c].value for c in est.targets_])\n"
        "assert np.array_equal(got, np.load(d + '/expected.npy')), 'predictions differ'\n")
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True)


@pytest.mark.parametrize("alignment, match", [
    ("wasserstein", (r"The 'alignment' parameter of AdversarialDARegressor must be a str "
                     r"among .*'coral'.* or an object implementing 'head', 'discrepancy'")),
    (keras.losses.MeanSquaredError(), r"The 'alignment' parameter .* Got <LossFunctionWrapper"),
])
def test_invalid_alignment_is_refused(domains, alignment, match):
    X, y, domain, *_ = domains
    with pytest.raises(InvalidParameterError, match=match):
        make_da(alignment=alignment).fit(X, y, sample_domain=domain)


def test_alignment_must_be_an_alignment_loss(domains):
    class Impostor:  # the methods, but not a Keras loss
        def head(self, features):
            return features

        discrepancy = callbacks = head

    X, y, domain, *_ = domains
    with pytest.raises(TypeError, match="alignment must be 'dann', 'coral', 'mmd' or an "
                                        "instance of .*AlignmentLoss; got an instance of Impostor"):
        make_da(alignment=Impostor()).fit(X, y, sample_domain=domain)


def test_get_alignment_errors_and_copies():
    with pytest.raises(ValueError, match=r"alignment must be one of \['coral', 'dann', 'mmd'\] "
                                         r"or an AlignmentLoss instance; got 'CORAL'"):
        get_alignment("CORAL")
    with pytest.raises(ValueError, match="n_kernels must be a positive integer; got 0"):
        MMDAlignment(n_kernels=0)
    given = DANNAlignment(units=(4,), warmup=2)
    copy = get_alignment(given)
    assert copy is not given and copy.get_config() == given.get_config()

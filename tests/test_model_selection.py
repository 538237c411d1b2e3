"""Label-free model selection: importance-weighted and deep-embedded validation scorers."""

import warnings

import numpy as np
import pytest
import sklearn
from astropy.utils.exceptions import AstropyUserWarning
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from astromorphnet.model_selection import (MIN_EFFECTIVE_SIZE, DeepEmbeddedValidationScorer,
                                           ImportanceWeightedScorer)

from .conftest import FAST_RANGES, ZEROPOINT

SCORERS = [ImportanceWeightedScorer, DeepEmbeddedValidationScorer]


class KernelLinear(RegressorMixin, BaseEstimator):
    """A line fitted to the labelled rows, weighted around ``centre`` (None: unweighted)."""

    def __init__(self, centre=None):
        self.centre = centre

    def fit(self, X, y, sample_domain=None):
        X, y = np.asarray(X, float), np.asarray(y, float)
        rows = np.isfinite(y)
        x = X[rows, 0]
        w = np.ones_like(x) if self.centre is None else np.exp(-0.5 * (x - self.centre) ** 2)
        self.coef_ = np.polyfit(x, y[rows], 1, w=np.sqrt(w))
        return self

    def predict(self, X):
        return np.polyval(self.coef_, np.asarray(X, float)[:, 0])


def covariate_shift(n_source=300, n_target=300, seed=0):
    """y = x² (+ noise); source x ~ N(0, 1), target x ~ N(1.2, 1); target labels hidden.

    The best straight line on the source is flat (slope 0), on the target
    steep (slope 2.4): a line fitted around x = 2.4 (its weighted training
    distribution is N(1.2, 0.5)) is ~4× better on the target and ~6× worse
    on the source than the unweighted fit.
    """
    rng = np.random.default_rng(seed)
    X = np.r_[rng.normal(0, 1, n_source), rng.normal(1.2, 1, n_target)][:, np.newaxis]
    truth = X[:, 0] ** 2 + rng.normal(0, 0.1, len(X))
    domain = np.r_[np.ones(n_source, int), -np.ones(n_target, int)]
    return X, np.where(domain > 0, truth, np.nan), truth, domain


@pytest.fixture(scope="module")
def candidates():
    X, y, _, _ = covariate_shift(n_source=2000, seed=99)
    return {centre: KernelLinear(centre).fit(X, y) for centre in (None, 1.2, 2.4)}


def _mse(model, X, y):
    return np.mean((model.predict(X) - y) ** 2)


@pytest.mark.parametrize("scorer_class", SCORERS)
def test_ranks_candidates_as_the_hidden_target_score_does(scorer_class, candidates):
    X, y, truth, domain = covariate_shift()
    source, target = domain > 0, domain < 0
    hidden = {c: -_mse(m, X[target], truth[target]) for c, m in candidates.items()}
    plain = {c: -_mse(m, X[source], y[source]) for c, m in candidates.items()}
    scorer = scorer_class(random_state=0)
    label_free = {c: scorer(m, X, y, sample_domain=domain) for c, m in candidates.items()}
    by_hidden = sorted(hidden, key=hidden.get, reverse=True)
    assert by_hidden == [2.4, 1.2, None]
    # The plain source score ranks them exactly the wrong way round ...
    assert sorted(plain, key=plain.get, reverse=True) == by_hidden[::-1]
    # ... the label-free score as the target labels would.
    assert sorted(label_free, key=label_free.get, reverse=True) == by_hidden
    assert MIN_EFFECTIVE_SIZE < scorer.effective_size_ < source.sum()


@pytest.mark.parametrize("scorer_class", SCORERS)
def test_never_reads_target_labels(scorer_class, candidates):
    X, y, truth, domain = covariate_shift()
    scorer = scorer_class(random_state=0)
    model = candidates[1.2]
    assert scorer(model, X, y, sample_domain=domain) == scorer(model, X, truth,
                                                               sample_domain=domain)
    # Without sample_domain, the unlabelled (NaN) rows are the target.
    assert scorer(model, X, y) == scorer(model, X, y, sample_domain=domain)


def test_control_variate_cuts_the_variance_of_the_weighted_risk(candidates):
    model = candidates[1.2]
    plain_iw, dev = [], []
    for seed in range(20):
        X, y, _, domain = covariate_shift(seed=seed)
        scorer = DeepEmbeddedValidationScorer(random_state=0)
        dev.append(scorer(model, X, y, sample_domain=domain))
        source = domain > 0
        weights = scorer.density_ratio_(X[source])
        loss = (model.predict(X[source]) - y[source]) ** 2 / y[source].var()
        plain_iw.append(-np.mean(weights * loss))
    assert np.std(dev) < 0.85 * np.std(plain_iw)


@pytest.mark.parametrize("scorer_class", SCORERS)
def test_grid_search_with_metadata_routing_picks_the_target_model(scorer_class):
    X, y, _, domain = covariate_shift(n_source=600, n_target=600)
    cv = list(StratifiedKFold(2, shuffle=True, random_state=0).split(X, domain))
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(KernelLinear().set_fit_request(sample_domain=True),
                              {"centre": [None, 1.2, 2.4]}, cv=cv,
                              scoring=scorer_class(random_state=0))
        search.fit(X, y, sample_domain=domain)
    assert search.best_params_ == {"centre": 2.4}
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_pipeline_domain_classifier_reads_the_final_step_input(candidates):
    X, y, _, domain = covariate_shift()
    # A column that tells the domains apart perfectly but that the model never sees.
    survey_id = np.where(domain > 0, 0.0, 100.0)[:, np.newaxis]
    pipe = make_pipeline(FunctionTransformer(lambda x: x[:, :1]), candidates[2.4])
    scorer = ImportanceWeightedScorer(random_state=0)
    expected = scorer(candidates[2.4], X, y, sample_domain=domain)
    assert scorer(pipe, np.hstack([X, survey_id]), y, sample_domain=domain) == expected


def test_small_effective_size_warns():
    rng = np.random.default_rng(1)
    # Target far in the source's tail: a handful of source rows carry the weight.
    X = np.r_[rng.normal(0, 1, 200), rng.normal(3, 0.3, 100)][:, np.newaxis]
    y = np.where(np.arange(300) < 200, X[:, 0] ** 2, np.nan)
    model = KernelLinear().fit(X, y)
    with pytest.warns(AstropyUserWarning, match=r"effective \d+\.\d of 200 source rows"):
        ImportanceWeightedScorer(random_state=0)(model, X, y)


def test_dev_warns_when_its_control_variate_overshoots():
    rng = np.random.default_rng(3)
    # A narrow target in the source's tail: few, heavy weights.
    X = np.r_[rng.normal(0, 1, 300), rng.normal(1.5, 0.5, 300)][:, np.newaxis]
    y = np.where(np.arange(600) < 300, X[:, 0] ** 2, np.nan)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        score = DeepEmbeddedValidationScorer(random_state=0)(KernelLinear(1.2).fit(X, y), X, y)
    assert score > 0  # a negative squared-error risk: meaningless, and said so
    messages = [str(w.message) for w in caught if w.category is AstropyUserWarning]
    assert any("control variate made the estimated risk negative" in m for m in messages)
    assert any("effective" in m for m in messages)


def test_no_warning_with_enough_effective_rows(candidates):
    X, y, _, domain = covariate_shift()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ImportanceWeightedScorer(random_state=0)(candidates[2.4], X, y, sample_domain=domain)


@pytest.mark.parametrize("scorer_class", SCORERS)
def test_fold_missing_a_domain_is_a_clear_error(scorer_class, candidates):
    X, y, _, domain = covariate_shift()
    scorer, model = scorer_class(), candidates[None]
    source, target = domain > 0, domain < 0
    with pytest.raises(ValueError, match="needs target rows .* this fold has none"):
        scorer(model, X[source], y[source], sample_domain=domain[source])
    with pytest.raises(ValueError, match="needs labelled source rows .* this fold has none"):
        scorer(model, X[target], y[target], sample_domain=domain[target])
    with pytest.raises(ValueError, match="needs labelled source rows"):
        scorer(model, X[target], y[target])  # all-NaN labels: every row is target


def test_malformed_input_and_parameters():
    X, y, _, domain = covariate_shift(n_source=50, n_target=50)
    model = KernelLinear().fit(X, y)
    with pytest.raises(ValueError, match="X has 100 rows but y has 99"):
        ImportanceWeightedScorer()(model, X, y[:99])
    with pytest.raises(ValueError, match="predictions have shape .* but y has"):
        ImportanceWeightedScorer()(model, X, np.column_stack([y, y]))
    with pytest.raises(ValueError, match="'weight_clip' parameter .* range"):
        ImportanceWeightedScorer(weight_clip=0.5)(model, X, y, sample_domain=domain)
    with pytest.raises(ValueError, match="'features' parameter .* must be a str among"):
        DeepEmbeddedValidationScorer(features="pixels")(model, X, y, sample_domain=domain)
    with pytest.raises(ValueError, match="sample_domain must hold positive integers"):
        ImportanceWeightedScorer()(model, X, y, sample_domain=np.zeros(100, int))
    model.coef_ = np.array([np.nan, 0.0])
    with pytest.raises(ValueError, match="predicted non-finite values on source rows"):
        ImportanceWeightedScorer()(model, X, y, sample_domain=domain)


def test_network_features_in_grid_search():
    pytest.importorskip("tensorflow")
    from astromorphnet import AdversarialDARegressor, stack_domains
    from astromorphnet.simulation import simulate_galaxies, simulate_real_like

    targets = ("r_eff", "ellipticity")
    sims, sim_truth = simulate_galaxies(32, stamp_size=16, ranges=FAST_RANGES, random_state=1)
    real, _ = simulate_real_like(32, stamp_size=16, ranges=FAST_RANGES, random_state=3)
    X, y, domain = stack_domains(sims, sim_truth[list(targets)], real, targets=targets)
    # One stratified split keeps this to two one-epoch fits.
    cv = [next(StratifiedKFold(2, shuffle=True, random_state=0).split(X, domain))]
    dann = AdversarialDARegressor(supervised=False, architecture="light", targets=targets,
                                  max_epochs=1, batch_size=16, zeropoint=ZEROPOINT,
                                  random_state=0)
    scoring = {features: ImportanceWeightedScorer(features=features, n_components=4,
                                                  random_state=0)
               for features in ("network", "input")}
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(dann.set_fit_request(sample_domain=True), {"alpha": [0.1, 0.9]},
                              cv=cv, refit=False, scoring=scoring)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyUserWarning)  # 16 source rows a fold
            search.fit(X, y, sample_domain=domain)
    network, pixels = (search.cv_results_[f"mean_test_{f}"] for f in scoring)
    assert np.isfinite(network).all() and (network < 0).all()
    assert np.isfinite(pixels).all() and (pixels < 0).all()
    # Same networks, same source rows, a different domain classifier.
    assert not np.allclose(network, pixels)

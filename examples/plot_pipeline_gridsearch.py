"""
Pipelines and grid search
=========================

The estimators are scikit-learn estimators, so the usual model-selection
tools apply: preprocessing steps in a `~sklearn.pipeline.Pipeline`,
hyper-parameters chosen by cross-validation with
`~sklearn.model_selection.GridSearchCV`.  This example tunes a
`~astromorphnet.SersicCNNRegressor` pipeline, then an
`~astromorphnet.AdversarialDARegressor`, whose ``sample_domain`` must reach
``fit`` and ``score`` through scikit-learn's metadata routing.
"""

import os

import keras
import matplotlib.pyplot as plt
import numpy as np
import sklearn
from astropy.table import Table
from keras import layers
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline

from astromorphnet import AdversarialDARegressor, SersicCNNRegressor, stack_domains
from astromorphnet.catalog import labels_to_array
from astromorphnet.metrics import r2_table
from astromorphnet.preprocessing import CutoutCropper, ImageNormalizer
from astromorphnet.simulation import simulate_galaxies, simulate_real_like

scale = float(os.environ.get("ASTROMORPHNET_EXAMPLE_SCALE", 1.0))
n = max(120, int(600 * scale))
n_target = max(60, int(240 * scale))
epochs = max(1, int(8 * scale))

# %%
# Data
# ----
# Cross-validation splits ``y`` with NumPy indexing, which an astropy table
# does not support, so the labels go in as the array of
# `~astromorphnet.catalog.labels_to_array`: columns ``mag``, ``r_eff``,
# ``sersic_n``, ``ellipticity`` in AB mag, pixels and plain numbers.
images, truth = simulate_galaxies(n, stamp_size=48, random_state=0,
                                  ranges={"mag": (17, 24), "r_eff": (1.5, 8)})
labels = labels_to_array(truth)
train, test = slice(0, int(0.8 * n)), slice(int(0.8 * n), n)
zeropoint = truth.meta["zeropoint"]

# %%
# A pipeline
# ----------
# `~astromorphnet.preprocessing.CutoutCropper` crops the 48×48 stamps to
# their central 32×32 pixels (cutouts of mixed sizes, as from a mosaic, would
# be cropped or padded to one size), and
# `~astromorphnet.preprocessing.ImageNormalizer` learns the noise level of the
# training pixels and stretches them.  Inside the pipeline the normaliser is
# fitted on each training fold only, so nothing leaks from the validation
# folds; the regressor's own stretch is then switched off with
# ``normalization=None``.
#
# By default ``predict`` returns a catalog (an astropy table with units);
# ``set_output(predict="array")`` makes it return a plain array, which
# scikit-learn's scorers (here ``scoring="r2"``) need.
regressor = SersicCNNRegressor(normalization=None, batch_size=32, max_epochs=epochs,
                               patience=3, zeropoint=zeropoint, random_state=0)
regressor.set_output(predict="array")
pipeline = make_pipeline(CutoutCropper(size=32), ImageNormalizer(), regressor)


# %%
# Besides the named networks (``"resnet"``, ``"thesis"``, ``"light"``),
# ``architecture`` takes any function ``builder(input_shape, n_outputs)``
# returning a Keras model, so network
# designs can be compared in the same grid.  (An
# `~astromorphnet.AdversarialDARegressor` also needs the layer that ends the
# feature extractor to be named ``"features"``.)
def small_cnn(input_shape, n_outputs):
    """Two convolution blocks and a small dense head."""
    inputs = keras.Input(input_shape)
    x = inputs
    for filters in (16, 32):
        x = layers.Conv2D(filters, 3, activation="relu", padding="same")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten(name="features")(x)
    x = layers.Dense(32, activation="relu")(x)
    return keras.Model(inputs, layers.Dense(n_outputs)(x), name="small_cnn")


# %%
# Grid search
# -----------
# Parameters of a pipeline step are named ``<step>__<parameter>``.  Each of
# the four candidates is trained on two folds, then the best one is refitted
# on the whole training set.
grid = {"sersiccnnregressor__learning_rate": [3e-4, 1e-3],
        "sersiccnnregressor__architecture": ["light", small_cnn]}
search = GridSearchCV(pipeline, grid, cv=KFold(2, shuffle=True, random_state=0), scoring="r2")
search.fit(images[train], labels[train])

results = Table({
    "learning_rate": np.array(search.cv_results_["param_sersiccnnregressor__learning_rate"],
                              dtype=float),
    "architecture": [getattr(a, "__name__", a) for a in
                     search.cv_results_["param_sersiccnnregressor__architecture"]],
    "mean R²": search.cv_results_["mean_test_score"],
    "std R²": search.cv_results_["std_test_score"],
    "fit time [s]": search.cv_results_["mean_fit_time"],
    "rank": search.cv_results_["rank_test_score"]})
for column in ("mean R²", "std R²", "fit time [s]"):
    results[column].info.format = ".3f"
print(results)

fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
names = [f"{a}, lr {lr:g}" for a, lr in zip(results["architecture"], results["learning_rate"])]
ax.barh(names, results["mean R²"], xerr=results["std R²"], color="0.6")
ax.set_xlabel("mean R² over the validation folds")

# %%
# The refitted best pipeline predicts arrays; `~astromorphnet.metrics.r2_table`
# takes them as well as catalogs.
best = search.best_estimator_
print("best:", {k.split("__")[1]: getattr(v, "__name__", v)
                for k, v in search.best_params_.items()})
print(r2_table(labels[test], {"best pipeline": best.predict(images[test])}))

# %%
# Domain adaptation with metadata routing
# ---------------------------------------
# `~astromorphnet.AdversarialDARegressor` needs to know which rows are
# simulated (source) and which real (target): the ``sample_domain`` array.
# In a grid search it travels as *metadata*.  With routing enabled
# (`sklearn.config_context` or `sklearn.set_config`), the estimator asks for
# it in ``fit`` and in ``score``; its ``score`` then judges only the target
# rows, the domain we adapt to.  The folds are stratified on domain, so each
# holds both.
#
# The target domain is `~astromorphnet.simulation.simulate_real_like`, a
# simulated stand-in for real galaxies.  The semi-supervised DANN
# (``supervised=False``) never trains on target labels, even when given; the
# target labels here serve only to score the folds.  With real data, that
# means a few labelled real galaxies (e.g. from classical fits) to validate
# on.
target, target_truth = simulate_real_like(n_target, stamp_size=48, random_state=1,
                                          ranges={"mag": (17, 24), "r_eff": (1.5, 8, "log")})
X, y, domain = stack_domains(images[train], labels[train], target, target_truth)
cv = list(StratifiedKFold(2, shuffle=True, random_state=0).split(X, domain))

with sklearn.config_context(enable_metadata_routing=True):
    dann = AdversarialDARegressor(False, "light", batch_size=32, learning_rate=1e-3,
                                  max_epochs=epochs, patience=3, zeropoint=zeropoint,
                                  random_state=0)
    dann.set_fit_request(sample_domain=True).set_score_request(sample_domain=True)
    dann_pipeline = make_pipeline(CutoutCropper(size=32), dann)
    dann_search = GridSearchCV(dann_pipeline, {"adversarialdaregressor__alpha": [0.8, 0.95]},
                               cv=cv)
    dann_search.fit(X, y, sample_domain=domain)

for alpha, score in zip(dann_search.cv_results_["param_adversarialdaregressor__alpha"],
                        dann_search.cv_results_["mean_test_score"]):
    print(f"alpha = {alpha}: mean R² on the target folds {score:.3f}")
print("best alpha:", dann_search.best_params_["adversarialdaregressor__alpha"])

# %%
# The best DANN predicts catalogs (no ``set_output`` here); score it on the
# target galaxies, which in this demonstration are also in its training set
# (unlabelled), as in a real semi-supervised application.
catalog = dann_search.best_estimator_.predict(target)
print(r2_table(target_truth, {"semi-supervised DANN": catalog}))

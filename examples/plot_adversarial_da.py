"""
Adversarial domain adaptation (DANN)
====================================

Transfer learning needs labelled real galaxies.  Domain-adversarial training
(DANN) trains **one** network on simulated (source) and real (target)
galaxies together.  Besides the regression head, a domain classifier tries
to tell the two domains apart from the network's features, and a
gradient-reversal layer turns its gradient around: the feature extractor
learns features that do *not* separate simulations from real galaxies, so
the regression learnt on simulations carries over.

`~astromorphnet.AdversarialDARegressor` comes in two flavours, as in the
reference thesis:

* ``supervised=True`` uses labelled target galaxies in the regression loss
  too;
* ``supervised=False`` (semi-supervised) uses only the target galaxies'
  pixels, and so needs **no real labels at all**.

The target domain here is `~astromorphnet.simulation.simulate_real_like`, a
**simulated stand-in for real galaxies** with exact labels: it lets us score
the methods, but the numbers are not results on real data.
"""

import os

import matplotlib.pyplot as plt
import numpy as np

from astromorphnet import AdversarialDARegressor, SersicCNNRegressor, stack_domains
from astromorphnet.cutouts import mask_neighbours
from astromorphnet.metrics import r2_table
from astromorphnet.simulation import simulate_galaxies, simulate_real_like
from astromorphnet.visualization import plot_predicted_vs_true

scale = float(os.environ.get("ASTROMORPHNET_EXAMPLE_SCALE", 1.0))
n_source = max(160, int(1000 * scale))
n_target = max(80, int(500 * scale))
epochs = max(2, int(15 * scale))

# %%
# Source and target sets
# ----------------------
# 80 % of the simulations train, 20 % test; 60 % of the real-like galaxies
# are the target training set, 40 % the target test set.  The simulations
# draw sizes log-uniformly, like the real-like galaxies: adversarial
# training aligns the two domains' feature distributions, which presumes
# they share their label distribution.
source, source_truth = simulate_galaxies(n_source, stamp_size=48, random_state=0,
                                         ranges={"mag": (16, 25), "r_eff": (1.3, 12, "log")})
target, target_truth = simulate_real_like(n_target, stamp_size=48, random_state=1,
                                          ranges={"mag": (16, 24), "r_eff": (1.5, 10, "log")})
# Survey pipelines mask the neighbours of each galaxy; cutouts without a
# segmentation map are segmented one by one (photutils), as here.
source, target = mask_neighbours(source), mask_neighbours(target)
s_train = slice(0, int(0.8 * n_source))
t_train, t_test = slice(0, int(0.6 * n_target)), slice(int(0.6 * n_target), n_target)

# %%
# Domain-adaptation estimators follow scikit-learn's (and skada's)
# convention: one ``X`` with both domains, a ``sample_domain`` array,
# positive for source and negative for target rows, and NaN labels for
# unlabelled rows.  `~astromorphnet.stack_domains` builds them.  The
# supervised network gets the target labels, the semi-supervised one not.
X_labelled, y_labelled, domain = stack_domains(source[s_train], source_truth[s_train],
                                               target[t_train], target_truth[t_train])
X_unlabelled, y_unlabelled, _ = stack_domains(source[s_train], source_truth[s_train],
                                              target[t_train])
print(f"{(domain > 0).sum()} source rows, {(domain < 0).sum()} target rows; "
      f"unlabelled target rows: {np.isnan(y_unlabelled).all(axis=1).sum()}")

# %%
# Three networks
# --------------
# The same light architecture and settings for all three.  A DANN batch
# holds as many source as target rows (the smaller domain is cycled), and
# the loss is ``alpha`` × regression + (1 − ``alpha``) × domain cross-entropy.
# DANN is the reference thesis's alignment and the default; ``alignment=``
# also takes ``"coral"`` and ``"mmd"``.  On the library's domain-shift
# benchmark MMD and CORAL beat DANN slightly when the target rows carry
# labels, and collapse without them (see the user guide's "Domain shift").
common = dict(learning_rate=1e-3, max_epochs=epochs, patience=5,
              zeropoint=source_truth.meta["zeropoint"],
              pixel_scale=source_truth.meta["pixel_scale"], random_state=0)
sim_only = SersicCNNRegressor("light", batch_size=32, **common)
sim_only.fit(source[s_train], source_truth[s_train])

supervised = AdversarialDARegressor(True, "light", batch_size=64, alpha=0.9, **common)
supervised.fit(X_labelled, y_labelled, sample_domain=domain)

semi_supervised = AdversarialDARegressor(False, "light", batch_size=64, alpha=0.9, **common)
semi_supervised.fit(X_unlabelled, y_unlabelled, sample_domain=domain)

# %%
# The reference thesis's table
# ----------------------------
# R² per parameter on the real-like target test set, one row per model (the
# layout of the reference thesis's tables), from
# `~astromorphnet.metrics.r2_table` given a dict of catalogs.  A quick run's
# values are noisy; raise ``ASTROMORPHNET_EXAMPLE_SCALE`` for steadier ones.
models = {"sim-only": sim_only, "supervised DANN": supervised,
          "semi-supervised DANN": semi_supervised}
catalogs = {name: model.predict(target[t_test]) for name, model in models.items()}
table = r2_table(target_truth[t_test], catalogs)
table.round(3)
print(table)

# %%
# The domain classifier
# ---------------------
# ``history_`` records, per epoch, the domain classifier's accuracy on the
# training batches and on the validation split.  An accuracy of 1 means the
# features still tell simulated from real-like galaxies; near 0.5 (chance,
# the dotted line) they no longer do.
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True, layout="constrained")
for ax, (name, model) in zip(axes, list(models.items())[1:]):
    history = model.history_
    epoch = range(1, len(history["domain_binary_accuracy"]) + 1)
    ax.plot(epoch, history["domain_binary_accuracy"], "o-", label="training")
    ax.plot(epoch, history["val_domain_binary_accuracy"], "s--", label="validation")
    ax.axhline(0.5, color="k", linestyle=":", linewidth=1)
    ax.set_xlabel("epoch")
    ax.set_title(name)
    print(f"{name}: {model.n_epochs_} epochs, last validation domain accuracy "
          f"{history['val_domain_binary_accuracy'][-1]:.2f}")
axes[0].set_ylabel("domain classifier accuracy")
axes[0].legend()

# %%
# Predicted against true parameters of the target test galaxies.
fig, axes = plt.subplots(2, 2, figsize=(9, 8), layout="constrained")
plot_predicted_vs_true(target_truth[t_test], catalogs, axes=axes, s=6, alpha=0.5)

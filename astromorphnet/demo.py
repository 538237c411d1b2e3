"""The main job: the reference thesis's experiment end to end on built-in data.

``astromorphnet demo`` on the command line runs `run_demo` on its defaults.
"""

import os
import time

import numpy as np

__all__ = ["SCALES", "run_demo"]

#: Sizes and training settings of the demo.  ``"default"`` finishes in
#: minutes on a laptop CPU; ``"thesis"`` uses the reference thesis's sizes,
#: stamps, network and training settings (a GPU job): 70,000 simulations
#: (the 50,000 training, 10,000 validation and 10,000 test galaxies it drew
#: from its 150,000), 5,000 real-like galaxies, and adversarial networks
#: trained on 5,000 simulations and 4,000 real-like galaxies for up to 300
#: epochs with patience 20.  ``dann_n_source=None`` gives the adversarial
#: networks every source training galaxy.  The default scale draws source
#: sizes log-uniformly, like the real-like galaxies': adversarial training
#: aligns the two domains' feature distributions, which presumes they share
#: their label distribution (the reference thesis's uniform sizes, kept at
#: the thesis scale, break that).
SCALES = {
    "default": dict(n_source=2000, n_target=1000, stamp_size=48, architecture="light",
                    learning_rate=1e-3, batch_size=32, max_epochs=25, patience=5,
                    fine_tune_learning_rate=3e-4, fine_tune_epochs=15,
                    dann_n_source=None, dann_max_epochs=25, dann_patience=5,
                    source_ranges={"mag": (16.0, 25.0), "r_eff": (1.3, 12.0, "log")},
                    target_ranges={"mag": (16.0, 24.0), "r_eff": (1.5, 10.0, "log")}),
    "thesis": dict(n_source=70000, n_target=5000, stamp_size=128, architecture="thesis",
                   learning_rate=1e-4, batch_size=16, max_epochs=100, patience=10,
                   fine_tune_learning_rate=1e-4, fine_tune_epochs=15,
                   dann_n_source=5000, dann_max_epochs=300, dann_patience=20,
                   source_ranges={}, target_ranges={}),
}

def run_demo(scale="default", *, test_fraction=0.2, target_test_fraction=0.4,
             output_dir="astromorphnet-demo", plots=True, random_state=0, verbose=1,
             **overrides):
    """Train sim-only, transfer-learning and both DANN networks; compare them.

    The reference thesis's experiment on built-in data:

    1. simulate a **source** set with the HST/CANDELS F160W training preset
       (`~astromorphnet.simulation.simulate_galaxies`) and a **target** set
       standing in for real galaxies
       (`~astromorphnet.simulation.simulate_real_like`: a varying PSF,
       correlated noise, knots, neighbours, sky residuals, cosmic rays),
       and mask the neighbours in every cutout as a survey pipeline does
       (`~astromorphnet.cutouts.mask_neighbours`);
    2. train `~astromorphnet.SersicCNNRegressor` on the source (sim-only),
       fine-tune it on the labelled target training set
       (`~astromorphnet.TransferLearningRegressor`), and train
       `~astromorphnet.AdversarialDARegressor` on both sets, supervised
       (target labels used) and semi-supervised (target labels hidden);
    3. report R² per parameter on the target and source test sets, write
       each model's target test catalog (ECSV), the R² tables, the Euclid
       morphology metrics per magnitude bin and the plots.

    Parameters
    ----------
    scale : {"default", "thesis"}, optional
        Preset of sizes and training settings (`SCALES`).
    test_fraction : float, optional
        Fraction of the source set held out for testing.
    target_test_fraction : float, optional
        Fraction of the target set held out for testing; the rest is the
        target training set (labelled for transfer learning and supervised
        DANN, unlabelled for semi-supervised DANN).
    output_dir : str or path-like, optional
        Where catalogs, tables and plots go.
    plots : bool, optional
        Save predicted-vs-true plots (needs matplotlib).
    random_state : int, optional
        Seed of the simulations and the training.
    verbose : int, optional
        0 silent; 1 progress bars and results.
    **overrides
        Entries of the `SCALES` preset to change (e.g. ``n_source=400``).

    Returns
    -------
    result : dict
        ``r2_target`` and ``r2_source`` (`~astropy.table.QTable`, one row
        per model), ``morphology_metrics`` (Euclid metrics per magnitude bin
        on the target test set), ``catalogs`` (model name → target test
        catalog with ``true_*`` columns), ``estimators`` and ``timings``
        (seconds).

    Examples
    --------
    >>> import tempfile
    >>> from astromorphnet.demo import run_demo
    >>> result = run_demo(n_source=48, n_target=32, stamp_size=32, max_epochs=1,
    ...                   fine_tune_epochs=1, plots=False, verbose=0,
    ...                   output_dir=tempfile.mkdtemp())
    >>> result["r2_target"]["model"].tolist()
    ['sim-only', 'transfer learning', 'supervised DANN', 'semi-supervised DANN']
    """
    from .catalog import TARGETS
    from .cutouts import mask_neighbours
    from .estimators import (AdversarialDARegressor, SersicCNNRegressor,
                             TransferLearningRegressor, stack_domains)
    from .metrics import morphology_metrics, r2_table
    from .simulation import simulate_galaxies, simulate_real_like

    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}; got {scale!r}")
    unknown = set(overrides) - set(SCALES[scale])
    if unknown:
        raise ValueError(f"unknown demo settings {sorted(unknown)}; choose among "
                         f"{sorted(SCALES[scale])}")
    cfg = {**SCALES[scale], **overrides}
    timings = {}
    say = print if verbose else (lambda *args, **kwargs: None)

    start = time.perf_counter()
    size = cfg["stamp_size"]
    say(f"Simulating {cfg['n_source']} training galaxies (HST/CANDELS F160W preset, "
        f"{size}x{size} px)...")
    source, source_truth = simulate_galaxies(
        cfg["n_source"], stamp_size=size, ranges=cfg["source_ranges"], n_jobs=-1,
        random_state=random_state, verbose=bool(verbose))
    say(f"Simulating {cfg['n_target']} real-like target galaxies (a stand-in for real data)...")
    target, target_truth = simulate_real_like(
        cfg["n_target"], stamp_size=size, ranges=cfg["target_ranges"], n_jobs=-1,
        random_state=random_state + 1, verbose=bool(verbose))
    timings["simulate"] = time.perf_counter() - start
    start = time.perf_counter()
    say("Masking neighbours (photutils segmentation of each cutout)...")
    source, target = mask_neighbours(source), mask_neighbours(target)
    timings["mask neighbours"] = time.perf_counter() - start

    s_train, s_test = _split(len(source), test_fraction)
    t_train, t_test = _split(len(target), target_test_fraction)
    common = dict(zeropoint=source_truth.meta["zeropoint"],
                  pixel_scale=source_truth.meta["pixel_scale"], random_state=random_state,
                  verbose=verbose)
    network = dict(architecture=cfg["architecture"], learning_rate=cfg["learning_rate"],
                   batch_size=cfg["batch_size"], max_epochs=cfg["max_epochs"],
                   patience=cfg["patience"], **common)
    estimators = {}

    def train(name, estimator, *args, **kwargs):
        say(f"\n== {name} ==")
        start = time.perf_counter()
        estimators[name] = estimator.fit(*args, **kwargs)
        timings[name] = time.perf_counter() - start

    train("sim-only", SersicCNNRegressor(**network), source[s_train], source_truth[s_train])
    train("transfer learning",
          TransferLearningRegressor(estimators["sim-only"],
                                    learning_rate=cfg["fine_tune_learning_rate"],
                                    max_epochs=cfg["fine_tune_epochs"], **common),
          target[t_train], target_truth[t_train])
    d_train = s_train[:cfg["dann_n_source"]]
    X, y, domain = stack_domains(source[d_train], source_truth[d_train],
                                 target[t_train], target_truth[t_train])
    adversarial = {**network, "max_epochs": cfg["dann_max_epochs"],
                   "patience": cfg["dann_patience"]}
    for name, supervised in (("supervised DANN", True), ("semi-supervised DANN", False)):
        train(name, AdversarialDARegressor(supervised, **adversarial), X, y,
              sample_domain=domain)

    start = time.perf_counter()
    catalogs = {name: est.predict(target[t_test]) for name, est in estimators.items()}
    source_catalogs = {name: est.predict(source[s_test]) for name, est in estimators.items()}
    timings["predict"] = time.perf_counter() - start
    r2_target = r2_table(target_truth[t_test], catalogs)
    r2_source = r2_table(source_truth[s_test], source_catalogs)
    metrics = morphology_metrics(target_truth[t_test], catalogs)

    os.makedirs(output_dir, exist_ok=True)
    for table, name in ((r2_target, "r2_target"), (r2_source, "r2_source")):
        for column in TARGETS:
            table[column].info.format = ".3f"
        table.write(os.path.join(output_dir, f"{name}.ecsv"), overwrite=True)
    metrics.write(os.path.join(output_dir, "morphology_metrics_target.ecsv"), overwrite=True)
    for name, catalog in catalogs.items():
        for column in TARGETS:
            catalog[f"true_{column}"] = target_truth[column][t_test]
        catalog.write(os.path.join(output_dir, f"catalog_{name.replace(' ', '_')}.ecsv"),
                      overwrite=True)
    if plots:
        _save_plots(target_truth[t_test], catalogs, output_dir)

    say(f"\nR² on the real-like TARGET test set ({len(t_test)} galaxies):")
    if verbose:
        r2_target.pprint(max_width=120)
    say(f"\nR² on the simulated SOURCE test set ({len(s_test)} galaxies):")
    if verbose:
        r2_source.pprint(max_width=120)
    say(f"\nWrote catalogs, R² tables{' and plots' if plots else ''} to {output_dir}/. "
        "Timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    return {"r2_target": r2_target, "r2_source": r2_source, "morphology_metrics": metrics,
            "catalogs": catalogs,
            "estimators": estimators, "timings": timings}


def _split(n, test_fraction):
    n_test = min(max(1, int(round(test_fraction * n))), n - 1)
    return np.arange(n - n_test), np.arange(n - n_test, n)


def _save_plots(truth, catalogs, output_dir):
    """Predicted vs true (all models overplotted) and per-model distributions, as PNG."""
    from .visualization import plot_distributions, plot_predicted_vs_true

    figure = plot_predicted_vs_true(truth, catalogs, s=4, alpha=0.5)
    figure.savefig(os.path.join(output_dir, "predicted_vs_true.png"), dpi=120)
    for name, catalog in catalogs.items():
        figure = plot_distributions(truth, catalog)
        figure.suptitle(name)
        figure.savefig(os.path.join(output_dir, f"distributions_{name.replace(' ', '_')}.png"),
                       dpi=120)

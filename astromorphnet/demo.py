"""The main job: the reference thesis's experiment end to end on built-in data.

``astromorphnet demo`` on the command line runs `run_demo` on its defaults.
"""

import os
import time
import warnings
from numbers import Integral, Real

import numpy as np
from astropy import log
from astropy.utils.exceptions import AstropyUserWarning

from ._progress import keras_verbose

__all__ = ["COUNTS", "MAX_SEED", "SCALES", "check_settings", "print_results", "run_demo"]

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
    "default": dict(n_source=2000, n_target=1000, stamp_size=48, architecture="resnet",
                    randomised=False,
                    learning_rate=1e-3, batch_size=32, max_epochs=25, patience=5,
                    fine_tune_learning_rate=3e-4, fine_tune_epochs=15,
                    dann_n_source=None, dann_max_epochs=25, dann_patience=5,
                    source_ranges={"mag": (16.0, 25.0), "r_eff": (1.3, 12.0, "log")},
                    target_ranges={"mag": (16.0, 24.0), "r_eff": (1.5, 10.0, "log")}),
    "thesis": dict(n_source=70000, n_target=5000, stamp_size=128, architecture="thesis",
                   randomised=False,
                   learning_rate=1e-4, batch_size=16, max_epochs=100, patience=10,
                   fine_tune_learning_rate=1e-4, fine_tune_epochs=15,
                   dann_n_source=5000, dann_max_epochs=300, dann_patience=20,
                   source_ranges={}, target_ranges={}),
}

#: Least training and test galaxies of each set: R² needs two test
#: galaxies, and the adversarial networks' validation split, stratified on
#: domain, needs at least two galaxies of each domain.
_MIN_TRAIN, _MIN_TEST = 4, 2
#: The integer settings of `SCALES` and the least value the demo runs with
#: (``dann_n_source`` may also be None: every source training galaxy).
#: The galaxy counts must moreover leave at least 4 training and 2 test
#: galaxies on each side of their split.
COUNTS = {"n_source": 1, "n_target": 1, "stamp_size": 16, "max_epochs": 1, "patience": 0,
          "fine_tune_epochs": 1, "dann_n_source": _MIN_TRAIN, "dann_max_epochs": 1,
          "dann_patience": 0}
#: Largest seed: the target set is drawn with ``random_state + 1``, and NumPy
#: seeds are below 2**32.
MAX_SEED = 2**32 - 2


def check_settings(scale="default", *, test_fraction=0.2, target_test_fraction=0.4,
                   output_dir="astromorphnet-demo", plots=True, random_state=0, verbose=1,
                   threads=None, **overrides):
    """Check every setting of `run_demo` before any work; return the sizes and training settings.

    `run_demo` calls it first, so a bad setting fails in a second rather
    than after minutes of simulating; the command line calls it to turn a
    bad argument into a one-line error.

    Parameters
    ----------
    scale, test_fraction, target_test_fraction, output_dir, plots
        As for `run_demo`.
    random_state, verbose, threads, **overrides
        As for `run_demo`.

    Returns
    -------
    settings : dict
        The ``scale`` preset of `SCALES` updated with ``overrides``.

    Raises
    ------
    ValueError
        If a setting is unknown or out of range (the message names it, the
        value given and what is accepted), the output folder cannot be
        written, or plots are asked for without matplotlib.

    Examples
    --------
    >>> from astromorphnet.demo import check_settings
    >>> check_settings(n_source=400)["n_source"]
    400
    >>> check_settings(n_target=5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: n_target=5 leaves 3 target galaxies for training ... give n_target >= 6
    """
    if not isinstance(scale, str) or scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}; got {scale!r}")
    unknown = set(overrides) - set(SCALES[scale])
    if unknown:
        raise ValueError(f"unknown demo settings {sorted(unknown)}; choose among "
                         f"{sorted(SCALES[scale])}")
    cfg = {**SCALES[scale], **overrides}
    for name, least in COUNTS.items():
        if not (name == "dann_n_source" and cfg[name] is None):
            _check_int(name, cfg[name], least)
    _check_int("random_state", random_state, 0, MAX_SEED)
    _check_int("verbose", verbose, 0)
    if threads is not None:
        _check_int("threads", threads, 1)
    for name, value in (("plots", plots), ("randomised", cfg["randomised"])):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False; got {value!r}")
    for domain, count, fraction_name, fraction in (
            ("source", "n_source", "test_fraction", test_fraction),
            ("target", "n_target", "target_test_fraction", target_test_fraction)):
        _check_split(domain, count, cfg[count], fraction_name, fraction)

    from .simulation import draw_parameters

    for name in ("source_ranges", "target_ranges"):
        try:
            draw_parameters(1, cfg[name], random_state=0)
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
    if cfg["architecture"] != SCALES[scale]["architecture"]:  # presets are known to build
        from .models import get_architecture

        get_architecture(cfg["architecture"])
    # The estimators' own parameter checks (learning rates, batch size, ...).
    for estimator in _estimators(cfg, zeropoint=None, pixel_scale=None,
                                 random_state=random_state, verbose=0).values():
        estimator._validate_params()
    _check_output_dir(output_dir)
    if plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError("plots need matplotlib, which is not installed: install it, "
                             "or pass plots=False (--no-plots)") from None
    return cfg


def run_demo(scale="default", *, test_fraction=0.2, target_test_fraction=0.4,
             output_dir="astromorphnet-demo", plots=True, random_state=0, verbose=1,
             threads=None, **overrides):
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
    3. report R² per parameter on the target and source test sets;
    4. report the coverage of each model's 68 % and 95 % error intervals on
       the target test set, as trained and after
       `~astromorphnet.SersicCNNRegressor.calibrate` with held-out simulations
       and the unlabelled target training set (weighted conformal
       prediction: no target label is used), which the returned
       estimators keep;
    5. write each model's target test catalog (ECSV, with calibrated
       errors), the R² and coverage tables, the Euclid morphology metrics
       per magnitude bin and the plots.

    Every setting is checked first (`check_settings`), before any work.

    Parameters
    ----------
    scale : {"default", "thesis"}, optional
        Preset of sizes and training settings (`SCALES`).
    test_fraction : float, optional
        Fraction of the source set held out for testing, in (0, 1).
    target_test_fraction : float, optional
        Fraction of the target set held out for testing, in (0, 1); the
        rest is the target training set (labelled for transfer learning
        and supervised DANN, unlabelled for semi-supervised DANN).
    output_dir : str or path-like, optional
        Where catalogs, tables and plots go (created if needed).
    plots : bool, optional
        Save predicted-vs-true plots (needs matplotlib).
    random_state : int, optional
        Seed of the simulations and the training, in [0, `MAX_SEED`].
    verbose : int, optional
        0 silent; 1 progress (through `astropy.log`, and Keras's progress
        bars on a terminal or one line per epoch in a log file) and the R²
        tables.
    threads : int, optional
        Pin TensorFlow's intra-op and inter-op thread pools to this many
        threads, so that a seeded run gives bit-identical numbers on every
        machine of one kind (same CPU model and library versions) whatever
        its core count (see :doc:`/user_guide/reproducibility`).  It must
        be set before TensorFlow starts, so in a fresh process.  By
        default TensorFlow sizes its pools by the cores it may use, and the
        numbers depend on that count.
    **overrides
        Entries of the `SCALES` preset to change (e.g. ``n_source=400``).

    Returns
    -------
    result : dict
        ``r2_target`` and ``r2_source`` (`~astropy.table.QTable`, one row
        per model; ``meta["n_galaxies"]`` is the size of the test set),
        ``coverage_target`` (one row per model and calibration state:
        observed coverage of the 68 % and 95 % intervals per parameter),
        ``morphology_metrics`` (Euclid metrics per magnitude bin on the
        target test set), ``catalogs`` (model name → target test catalog
        with ``true_*`` columns), ``estimators`` and ``timings`` (seconds).

    Raises
    ------
    ValueError
        If a setting is out of range (`check_settings`), before any work.
    RuntimeError
        If ``threads`` is given after TensorFlow has started.

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
    from .estimators import stack_domains
    from .metrics import morphology_metrics, r2_table
    from .simulation import simulate_galaxies, simulate_randomised, simulate_real_like

    cfg = check_settings(scale, test_fraction=test_fraction,
                         target_test_fraction=target_test_fraction, output_dir=output_dir,
                         plots=plots, random_state=random_state, verbose=verbose,
                         threads=threads, **overrides)
    if threads is not None:
        _pin_threads(threads)
    timings = {}
    say = log.info if verbose else (lambda message: None)

    start = time.perf_counter()
    size = cfg["stamp_size"]
    kind = "domain-randomised " if cfg["randomised"] else ""
    say(f"Simulating {cfg['n_source']} {kind}training galaxies (HST/CANDELS F160W preset, "
        f"{size}x{size} px)...")
    simulate = simulate_randomised if cfg["randomised"] else simulate_galaxies
    source, source_truth = simulate(
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
    estimators = _estimators(cfg, zeropoint=source_truth.meta["zeropoint"],
                             pixel_scale=source_truth.meta["pixel_scale"],
                             random_state=random_state, verbose=keras_verbose(verbose))
    d_train = s_train[:cfg["dann_n_source"]]
    X, y, domain = stack_domains(source[d_train], source_truth[d_train],
                                 target[t_train], target_truth[t_train])
    data = {"sim-only": ((source[s_train], source_truth[s_train]), {}),
            "transfer learning": ((target[t_train], target_truth[t_train]), {}),
            "supervised DANN": ((X, y), {"sample_domain": domain}),
            "semi-supervised DANN": ((X, y), {"sample_domain": domain})}
    for name, estimator in estimators.items():
        say(f"Training {name} ({type(estimator).__name__})...")
        start = time.perf_counter()
        args, kwargs = data[name]
        estimator.fit(*args, **kwargs)
        timings[name] = time.perf_counter() - start

    start = time.perf_counter()
    say("Calibrating the errors (held-out simulations, unlabelled target galaxies)...")
    X_cal, y_cal, domain_cal = stack_domains(source[s_test], source_truth[s_test],
                                             target[t_train])
    coverage = _coverage(estimators, target[t_test], target_truth[t_test],
                         (X_cal, y_cal, domain_cal))
    timings["calibrate"] = time.perf_counter() - start
    start = time.perf_counter()
    catalogs = {name: est.predict(target[t_test]) for name, est in estimators.items()}
    source_catalogs = {name: est.predict(source[s_test]) for name, est in estimators.items()}
    timings["predict"] = time.perf_counter() - start
    r2_target = r2_table(target_truth[t_test], catalogs)
    r2_source = r2_table(source_truth[s_test], source_catalogs)
    metrics = morphology_metrics(target_truth[t_test], catalogs)

    os.makedirs(output_dir, exist_ok=True)
    coverage.write(os.path.join(output_dir, "coverage_target.ecsv"), overwrite=True)
    for table, name, n in ((r2_target, "r2_target", len(t_test)),
                           (r2_source, "r2_source", len(s_test))):
        table.meta["n_galaxies"] = n
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

    result = {"r2_target": r2_target, "r2_source": r2_source, "coverage_target": coverage,
              "morphology_metrics": metrics,
              "catalogs": catalogs, "estimators": estimators, "timings": timings}
    if verbose:
        print_results(result)
    say(f"Wrote catalogs, R² tables{' and plots' if plots else ''} to {output_dir}/. "
        "Timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    return result


def print_results(result):
    """Print the R² tables of a `run_demo` result on standard output.

    Parameters
    ----------
    result : dict
        What `run_demo` returned.

    Examples
    --------
    >>> from astropy.table import QTable
    >>> from astromorphnet.demo import print_results
    >>> table = QTable({"model": ["sim-only"], "mag": [0.9]}, meta={"n_galaxies": 8})
    >>> print_results({"r2_target": table, "r2_source": table})
    R² on the real-like TARGET test set (8 galaxies):
     model   mag
    -------- ---
    sim-only 0.9
    <BLANKLINE>
    R² on the simulated SOURCE test set (8 galaxies):
     model   mag
    -------- ---
    sim-only 0.9
    """
    for key, title in (("r2_target", "the real-like TARGET"),
                       ("r2_source", "the simulated SOURCE")):
        table = result[key]
        if key != "r2_target":
            print()
        print(f"R² on {title} test set ({table.meta['n_galaxies']} galaxies):")
        table.pprint(max_width=120)
    if "coverage_target" in result:
        table = result["coverage_target"]
        print(f"\nCoverage of the 68 % and 95 % error intervals on the TARGET test set "
              f"({table.meta['n_galaxies']} galaxies; ideal 0.68 and 0.95):")
        table.pprint(max_width=160)


def _coverage(estimators, images, truth, calibration_set):
    """Coverage table before and after a weighted calibration (done in place)."""
    from astropy.table import QTable

    from .metrics import coverage_table

    X, y, domain = calibration_set
    rows = []
    for name, estimator in estimators.items():
        for state in ("as trained", "calibrated"):
            if state == "calibrated":
                with warnings.catch_warnings():
                    # Small demo sets: the calibration says so; the table shows it.
                    warnings.simplefilter("ignore", AstropyUserWarning)
                    estimator.calibrate(X, y, sample_domain=domain)
            table = coverage_table(estimator.predict_distribution(images), truth)
            row = {"model": name, "errors": state}
            for entry in table:
                for level in ("68", "95"):
                    row[f"{entry['parameter']}_{level}"] = entry[f"coverage_{level}"]
            rows.append(row)
    coverage = QTable(rows=rows, meta={"n_galaxies": len(images)})
    for column in coverage.colnames[2:]:
        coverage[column].info.format = ".2f"
    return coverage


def _estimators(cfg, *, zeropoint, pixel_scale, random_state, verbose):
    """The demo's four unfitted estimators, by name, in training order.

    Transfer learning fine-tunes the sim-only estimator, which is fitted
    first.
    """
    from .estimators import AdversarialDARegressor, SersicCNNRegressor, TransferLearningRegressor

    common = dict(zeropoint=zeropoint, pixel_scale=pixel_scale, random_state=random_state,
                  verbose=verbose)
    network = dict(architecture=cfg["architecture"], learning_rate=cfg["learning_rate"],
                   batch_size=cfg["batch_size"], max_epochs=cfg["max_epochs"],
                   patience=cfg["patience"], **common)
    adversarial = {**network, "max_epochs": cfg["dann_max_epochs"],
                   "patience": cfg["dann_patience"]}
    sim_only = SersicCNNRegressor(**network)
    return {"sim-only": sim_only,
            "transfer learning": TransferLearningRegressor(
                sim_only, learning_rate=cfg["fine_tune_learning_rate"],
                max_epochs=cfg["fine_tune_epochs"], **common),
            "supervised DANN": AdversarialDARegressor(True, **adversarial),
            "semi-supervised DANN": AdversarialDARegressor(False, **adversarial)}


def _pin_threads(threads):
    """Fix TensorFlow's thread pools: its results depend on their sizes."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        raise RuntimeError(
            f"threads={threads} must be set before TensorFlow starts: run the demo in a "
            "fresh process (astromorphnet demo --threads ...)") from None


def _check_int(name, value, least, most=None):
    if (not isinstance(value, Integral) or isinstance(value, bool) or value < least
            or (most is not None and value > most)):
        accepted = f"an integer >= {least}" if most is None else f"an integer in [{least}, {most}]"
        raise ValueError(f"{name} must be {accepted}; got {value!r}")


def _check_split(domain, count, n, fraction_name, fraction):
    if not isinstance(fraction, Real) or isinstance(fraction, bool) or not 0 < fraction < 1:
        raise ValueError(f"{fraction_name} must be a number in (0, 1); got {fraction!r}")

    def enough(m):
        n_train, n_test = _split_sizes(m, fraction)
        return n_train >= _MIN_TRAIN and n_test >= _MIN_TEST

    if not enough(n):
        # Both split sizes grow with n, so the least valid n is found by bisection.
        low, high = 2, 2**63
        while low < high:
            mid = (low + high) // 2
            low, high = (low, mid) if enough(mid) else (mid + 1, high)
        n_train, n_test = _split_sizes(n, fraction)
        raise ValueError(
            f"{count}={n} leaves {n_train} {domain} galaxies for training and {n_test} for "
            f"testing ({fraction_name}={fraction}); the demo needs at least {_MIN_TRAIN} "
            f"and {_MIN_TEST}: give {count} >= {low}")


def _check_output_dir(output_dir):
    try:
        path = os.path.abspath(os.fspath(output_dir))
    except TypeError:
        raise ValueError(f"output_dir must be a path; got {output_dir!r}") from None
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"output_dir {os.fspath(output_dir)!r} exists and is not a folder")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(f"output_dir {os.fspath(output_dir)!r} cannot be created: "
                         f"{existing!r} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"output_dir {os.fspath(output_dir)!r} cannot be written: "
                         f"{existing!r} is not writable")


def _split_sizes(n, test_fraction):
    n_test = min(max(1, int(round(test_fraction * n))), n - 1)
    return n - n_test, n_test


def _split(n, test_fraction):
    n_train, _ = _split_sizes(n, test_fraction)
    return np.arange(n_train), np.arange(n_train, n)


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

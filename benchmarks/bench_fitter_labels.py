"""Fine-tuning on fitter labels: R² against the truth vs the number of labelled galaxies.

Not a test: run by hand; the numbers go into ``docs/user_guide/fitting.rst``::

    python benchmarks/bench_fitter_labels.py                          # 64 px, 100/300/1000 labels
    python benchmarks/bench_fitter_labels.py --size 32 --n-sim 1000 --n-labels 100 300 \\
        --n-test 300 --n-fit 100 --epochs 10 --tune-epochs 10 --jobs 2

The real-data workflow of issue 10 (lever f), on stand-ins for real galaxies
whose truth only the scoring sees (`~astromorphnet.simulation.simulate_real_like`,
neighbours masked with `~astromorphnet.cutouts.mask_neighbours` unless
``--no-mask``).  Per seed it trains:

(a) ``sim-only``: a `~astromorphnet.SersicCNNRegressor` on plain simulations
    of the survey preset (`~astromorphnet.simulation.simulate_galaxies`);
(b) ``fitter labels``: (a) fine-tuned (`~astromorphnet.TransferLearningRegressor`)
    on the first N real-like galaxies labelled by
    `~astromorphnet.fitting.label_with_fit` with the preset's PSF and the
    cuts ``--max-chi2``/``--max-rel-error`` (its rejected rows skipped:
    ``n_used`` says how many were kept), for each N of ``--n-labels``;
(c) ``true labels``: (a) fine-tuned on the same N galaxies with their true
    labels (the ceiling of (b));
(d) ``fit_sersic``: `~astromorphnet.fitting.label_with_fit` itself on the
    first ``--n-fit`` test galaxies, scored on the fits that pass its cuts.

R² is measured on ``--n-test`` held-out real-like galaxies (``r2_*``), and,
for a like-for-like comparison with (d), on the test galaxies whose fit
passed the cuts (``fitsel_r2_*``).  Prints a table (mean ± std over seeds)
and writes every run as ECSV (``--output``).
"""

import argparse
import time

import numpy as np

TARGETS = ("mag", "r_eff", "sersic_n", "ellipticity")
SHORT = {"mag": "mag", "r_eff": "r_eff", "sersic_n": "n", "ellipticity": "e"}


def _data(args, seed):
    from astromorphnet.cutouts import mask_neighbours
    from astromorphnet.simulation import (THESIS_RANGES, SurveyConfig, simulate_galaxies,
                                          simulate_real_like)

    # Galaxies must fit their stamps, or the fits are flagged EXTRAPOLATED.
    r_max = args.size / 4
    sims = simulate_galaxies(args.n_sim, "CANDELS_F160W", stamp_size=args.size,
                             ranges={**THESIS_RANGES, "r_eff": (1.3, r_max)}, n_jobs=args.jobs,
                             random_state=seed)
    n_real = max(args.n_labels) + args.n_test
    real, truth = simulate_real_like(n_real, stamp_size=args.size,
                                     ranges={"r_eff": (1.5, r_max, "log")}, n_jobs=args.jobs,
                                     random_state=seed + 1)
    if args.mask:
        real = mask_neighbours(real)
    split = max(args.n_labels)
    survey = SurveyConfig.from_preset("CANDELS_F160W", stamp_size=args.size)
    return dict(sims=sims, survey=survey, real=real[:split], real_truth=truth[:split],
                test=real[split:], test_truth=truth[split:])


def _r2(truth, catalog, rows=None):
    from astromorphnet.metrics import r2_table

    if rows is not None:
        truth, catalog = truth[rows], catalog[rows]
    if len(truth) < 2:
        return dict.fromkeys(TARGETS, np.nan)
    table = r2_table(truth, {"model": catalog}, targets=TARGETS)
    return {t: float(table[t][0]) for t in TARGETS}


def _runs(args, seed):
    """Yield one result row per method of one seed."""
    import warnings

    from astromorphnet import SersicCNNRegressor, TransferLearningRegressor
    from astromorphnet.fitting import label_with_fit

    data = _data(args, seed)
    survey, test, test_truth = data["survey"], data["test"], data["test_truth"]

    def label(images):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the count is reported in the table
            return label_with_fit(images, survey, max_chi2=args.max_chi2,
                                  max_rel_error=args.max_rel_error, n_jobs=args.jobs)

    start = time.perf_counter()
    fitted_test = label(test[:args.n_fit])
    fit_minutes = (time.perf_counter() - start) / 60
    fitsel = np.flatnonzero(fitted_test["selected"])
    yield dict(method="fit_sersic", n_labels=0, n_used=len(fitsel), minutes=fit_minutes,
               r2=_r2(test_truth[:args.n_fit], fitted_test, fitsel),
               fitsel_r2=_r2(test_truth[:args.n_fit], fitted_test, fitsel))

    def scored(method, estimator, n_labels, n_used, minutes):
        catalog = estimator.predict(test)
        return dict(method=method, n_labels=n_labels, n_used=n_used, minutes=minutes,
                    r2=_r2(test_truth, catalog),
                    fitsel_r2=_r2(test_truth[:args.n_fit], catalog[:args.n_fit], fitsel))

    start = time.perf_counter()
    pretrained = SersicCNNRegressor(args.architecture, max_epochs=args.epochs, patience=5,
                                    learning_rate=1e-3, batch_size=32,
                                    zeropoint=survey.zeropoint, random_state=seed)
    pretrained.fit(*data["sims"])
    sim_minutes = (time.perf_counter() - start) / 60
    yield scored("sim-only", pretrained, 0, 0, sim_minutes)

    start = time.perf_counter()
    labels = label(data["real"])
    label_minutes = (time.perf_counter() - start) / 60
    tuning = dict(max_epochs=args.tune_epochs, learning_rate=2e-4, batch_size=16,
                  zeropoint=survey.zeropoint, random_state=seed)
    for n in args.n_labels:
        for method, y in (("fitter labels", labels[:n]), ("true labels", data["real_truth"][:n])):
            n_used = int(y["selected"].sum()) if "selected" in y.colnames else n
            start = time.perf_counter()
            # The documented one call: rejected fits are NaN rows, skipped by fit.
            tuned = TransferLearningRegressor(pretrained, **tuning).fit(data["real"][:n], y)
            minutes = (time.perf_counter() - start) / 60
            if method == "fitter labels":  # labelling n galaxies is part of its cost
                minutes += label_minutes * n / len(labels)
            yield scored(method, tuned, n, n_used, minutes)


def _table(rows):
    from astropy.table import QTable

    table = QTable(rows=[{**{k: v for k, v in row.items() if k not in ("r2", "fitsel_r2")},
                          **{f"r2_{t}": row["r2"][t] for t in TARGETS},
                          **{f"fitsel_r2_{t}": row["fitsel_r2"][t] for t in TARGETS}}
                         for row in rows])
    for name in table.colnames:
        if name.startswith(("r2_", "fitsel_r2_")) or name == "minutes":
            table[name].info.format = ".3f"
    return table


def _summary(table):
    """One line per (method, n_labels): mean ± std over seeds."""
    lines = [f"{'method':<14} {'N':>5} {'used':>5} "
             + " ".join(f"{t:>13}" for t in TARGETS) + "   "
             + " ".join(f"{'fit-sel ' + SHORT[t]:>13}" for t in TARGETS) + f" {'min':>6}"]
    keys = list(dict.fromkeys(zip(table["method"], table["n_labels"])))  # in run order
    for method, n_labels in keys:
        group = table[(table["method"] == method) & (table["n_labels"] == n_labels)]

        def cell(name):
            values = np.asarray(group[name], float)
            spread = f"±{values.std():.3f}" if len(values) > 1 else ""
            return f"{values.mean():.3f}{spread}".rjust(13)

        lines.append(f"{method:<14} {n_labels:>5} "
                     f"{np.mean(group['n_used']):>5.0f} "
                     + " ".join(cell(f"r2_{t}") for t in TARGETS) + "   "
                     + " ".join(cell(f"fitsel_r2_{t}") for t in TARGETS)
                     + f" {np.mean(group['minutes']):>6.2f}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--size", type=int, default=64, help="stamp size in pixels (default: %(default)s)")
    add("--n-sim", type=int, default=6000, help="training simulations (default: %(default)s)")
    add("--n-labels", type=int, nargs="+", default=[100, 300, 1000],
        help="numbers of fitter-labelled galaxies to fine-tune on (default: %(default)s)")
    add("--n-test", type=int, default=500, help="held-out real-like galaxies")
    add("--n-fit", type=int, default=200, help="test galaxies fitted for row (d)")
    add("--epochs", type=int, default=15, help="most pretraining epochs (patience 5)")
    add("--tune-epochs", type=int, default=15, help="fine-tuning epochs")
    add("--architecture", default="light", help="SersicCNNRegressor architecture")
    add("--seeds", type=int, nargs="+", default=[0], help="seeds (default: %(default)s)")
    add("--jobs", type=int, default=-1, help="processes for simulations and fits")
    add("--threads", type=int, default=2, help="TensorFlow thread pools (pinned)")
    add("--max-chi2", type=float, default=None, help="label_with_fit's max_chi2 cut")
    add("--max-rel-error", type=float, default=None, help="label_with_fit's max_rel_error cut")
    add("--no-mask", dest="mask", action="store_false",
        help="do not mask neighbours in the real-like cutouts")
    add("--output", default="bench_fitter_labels.ecsv", help="ECSV of every run")
    args = parser.parse_args()
    if args.n_fit > args.n_test:
        parser.error(f"--n-fit ({args.n_fit}) must not exceed --n-test ({args.n_test})")

    from astromorphnet.demo import _pin_threads

    _pin_threads(args.threads)
    rows = []
    for seed in args.seeds:
        for row in _runs(args, seed):
            row["seed"] = seed
            rows.append(row)
            print(row, flush=True)
    table = _table(rows)
    table.meta["command"] = vars(args)
    table.write(args.output, overwrite=True)
    print(_summary(table))
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    main()

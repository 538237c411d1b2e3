"""Domain-shift benchmark: every estimator and lever on realistic targets (run by hand, not a test).

    python benchmarks/bench_domain_shift.py                       # CPU scale, 3 seeds, 2 targets
    python benchmarks/bench_domain_shift.py --seeds 1 --n-sim 2000 --epochs 4 --targets hst_hard
    python benchmarks/bench_domain_shift.py --scale gpu           # a lent GPU: larger sets, thesis net

The source is always the user's own **plain** simulations of the target's
survey preset (`~astromorphnet.simulation.simulate_galaxies`), or their
domain-randomised form (`~astromorphnet.simulation.simulate_randomised`)
where a row says so.  The targets are realistic stand-ins for real data
(`~astromorphnet.simulation.simulate_target`), with exact labels that only
the scoring sees (and the labelled rows of the supervised methods).

For each seed and target it trains:

* ``sim-only`` and ``sim-only (randomised)``;
* ``transfer`` (fine-tuned on ``--n-labelled`` target galaxies) from each;
* supervised and semi-supervised domain adaptation with every alignment
  loss (``dann``, ``coral``, ``mmd``), on the source plus ``--n-labelled``
  labelled (supervised only) and ``--n-unlabelled`` unlabelled targets;
* the ablation: the transfer row again with one lever changed
  (``--ablation``: without symmetry augmentation, with test-time
  averaging, unbounded outputs, another network);

then reports, on ``--n-test`` held-out target galaxies, R² per parameter,
the Euclid metrics (bias, σ68 dispersion, outlier fraction, all magnitudes),
the share of predictions outside the physical ranges and training minutes;
and ``fit_sersic`` (the survey preset's PSF, unflagged fits) on the first
``--n-fit`` test galaxies beside the transfer row on the same galaxies.
In-domain R² (a simulated test set) is reported for the sim-only rows.
Prints a JSON line per run, a table of means ± std over seeds, and writes
it as ECSV (``--output``).
"""

import argparse
import copy
import json
import os
import time

import numpy as np

TARGETS = ("mag", "r_eff", "sersic_n", "ellipticity")
#: Lever changed by each ablation row (on top of the estimators' defaults).
ABLATION = {
    "augment": {"augment": True},
    "augment+tta": {"augment": True, "tta": True},
    "no augment": {"augment": False, "tta": False},
    "unbounded": {"bounded": False},
    "resnet": {"architecture": "resnet"},
    "light": {"architecture": "light"},
}
ALIGNMENTS = ("dann", "coral", "mmd")
#: Ablation rows run by default: the levers the estimators' defaults
#: (``augment=True``, ``tta=False``, ``bounded=True``) do not already have;
#: networks are compared by ``bench_architectures.py``.
DEFAULT_ABLATION = ("no augment", "augment+tta", "unbounded")
#: ``cpu``: 3 seeds × 2 targets took 82 minutes on this project's 2-core CPU.
SCALES = {
    "cpu": dict(n_sim=3000, n_labelled=500, n_unlabelled=1500, n_test=500, n_fit=100,
                size=48, epochs=6, architecture="resnet"),
    "gpu": dict(n_sim=10000, n_labelled=500, n_unlabelled=1500, n_test=2000, n_fit=500,
                size=64, epochs=40, architecture="thesis"),
}


#: The user's own plain simulations for each target: the survey's nominal
#: preset (not the target's perturbed one) and the target's label ranges.
SOURCES = {"hst_hard": "CANDELS_F160W", "ground": "GROUND_R", "real_like": "CANDELS_F160W"}


def _data(args, target, seed):
    """Source (plain and randomised), target splits and a simulated test set."""
    from astromorphnet.simulation import (REAL_LIKE_RANGES, TARGET_DOMAINS, simulate_galaxies,
                                          simulate_randomised, simulate_real_like,
                                          simulate_target)

    survey = SOURCES[target]
    ranges = TARGET_DOMAINS[target]["ranges"] if target in TARGET_DOMAINS else REAL_LIKE_RANGES
    kwargs = {"stamp_size": args.size, "n_jobs": args.jobs, "ranges": ranges}
    sims, truth = simulate_galaxies(args.n_sim + args.n_test, survey, random_state=seed,
                                    **kwargs)
    randomised = simulate_randomised(args.n_sim, survey, random_state=seed + 1, **kwargs)
    n_target = args.n_labelled + args.n_unlabelled + args.n_test
    if target == "real_like":
        real, real_truth = simulate_real_like(n_target, random_state=seed + 2, **kwargs)
    else:
        real, real_truth = simulate_target(n_target, target, random_state=seed + 2, **kwargs)
    a, b = args.n_labelled, args.n_labelled + args.n_unlabelled
    n = args.n_sim
    return {"survey": survey, "source": (sims[:n], truth[:n]),
            "sim_test": (sims[n:], truth[n:]), "randomised": randomised,
            "labelled": (real[:a], real_truth[:a]), "unlabelled": real[a:b],
            "test": (real[b:], real_truth[b:]), "zeropoint": truth.meta["zeropoint"]}


def _score(estimator, images, truth):
    """R², Euclid metrics (all magnitudes) and out-of-range share of one estimator."""
    from astromorphnet.catalog import PHYSICAL_RANGES, labels_to_array
    from astromorphnet.metrics import morphology_metrics, r2_table

    catalog = estimator.predict(images)
    r2 = r2_table(truth, {"model": catalog})
    euclid = morphology_metrics(truth, catalog, mag_bins=None)
    pred = labels_to_array(catalog, TARGETS, allow_nan=True, check_range=False)
    outside = np.zeros(len(pred), bool)
    for j, name in enumerate(TARGETS):
        low, high, closed_high = PHYSICAL_RANGES[name]
        above = pred[:, j] > high if closed_high else pred[:, j] >= high
        outside |= (pred[:, j] < low) | above
    def first(column):
        return {t: float(np.asarray(getattr(euclid[f"{t}_{column}"], "value",
                                            euclid[f"{t}_{column}"]))[0]) for t in TARGETS}

    return {"r2": {t: float(r2[t][0]) for t in TARGETS}, "bias": first("bias"),
            "sigma68": first("dispersion"), "outliers": first("outlier_fraction"),
            "out_of_range": float(outside.mean())}


def _timed(estimator, *args, **kwargs):
    start = time.perf_counter()
    estimator.fit(*args, **kwargs)
    return estimator, (time.perf_counter() - start) / 60


def _estimators(args, data, seed):
    """Yield ``(name, fitted estimator, training minutes, extra scores)`` per method."""
    from astromorphnet import (AdversarialDARegressor, SersicCNNRegressor,
                               TransferLearningRegressor)
    from astromorphnet.estimators import stack_domains

    common = dict(architecture=args.architecture, max_epochs=args.epochs, patience=5,
                  learning_rate=1e-3, batch_size=32, zeropoint=data["zeropoint"],
                  random_state=seed)
    tuning = dict(max_epochs=max(args.epochs // 2, 2), learning_rate=2e-4, batch_size=16,
                  zeropoint=data["zeropoint"], random_state=seed)

    def pair(source, levers):
        params = {**common, **levers}
        sim_only, minutes = _timed(SersicCNNRegressor(**params), *source)
        fine = {k: v for k, v in levers.items() if k in ("augment", "tta")}
        transfer, tl_minutes = _timed(TransferLearningRegressor(sim_only, **tuning, **fine),
                                      *data["labelled"])
        return sim_only, minutes, transfer, minutes + tl_minutes

    methods = set(args.methods)
    for suffix, source in (("", data["source"]), (" (randomised)", data["randomised"])):
        if not methods & {"sim-only", "transfer"}:
            break
        sim_only, minutes, transfer, tl_minutes = pair(source, {})
        in_domain = {"r2_in_domain": _score(sim_only, *data["sim_test"])["r2"]}
        if "sim-only" in methods:
            yield f"sim-only{suffix}", sim_only, minutes, in_domain
        if "transfer" in methods:
            yield f"transfer{suffix}", transfer, tl_minutes, {}
    trained = {}
    for name in args.ablation:
        # Test-time averaging changes only prediction: reuse the network
        # trained with the same other levers.
        levers = {k: v for k, v in ABLATION[name].items() if k != "tta"}
        key = tuple(sorted(levers.items()))
        if key not in trained:
            trained[key] = pair(data["source"], levers)[2:]
        transfer, minutes = trained[key]
        if "tta" in ABLATION[name]:
            transfer = copy.copy(transfer).set_params(tta=ABLATION[name]["tta"])
        yield f"transfer [{name}]", transfer, minutes, {}
    from astromorphnet.catalog import labels_to_array

    real = np.concatenate([data["labelled"][0], data["unlabelled"]])
    known = labels_to_array(data["labelled"][1], TARGETS)
    for supervised in (True, False):
        kind = "supervised" if supervised else "semi-supervised"
        if kind not in methods:
            continue
        y_real = np.full((len(real), len(TARGETS)), np.nan)
        if supervised:
            y_real[:len(known)] = known
        X, y, domain = stack_domains(*data["source"], real, y_real)
        for alignment in args.alignments:
            da = AdversarialDARegressor(supervised=supervised, alignment=alignment,
                                        **{**common, "patience": 8})
            yield (f"{kind} DA ({alignment})", *_timed(da, X, y, sample_domain=domain), {})


def _fit_sersic_rows(args, data, transfer):
    """``fit_sersic`` (survey PSF, unflagged fits) and ``transfer`` on the same galaxies."""
    from astromorphnet.fitting import fit_sersic
    from astromorphnet.metrics import r2_table
    from astromorphnet.simulation import SurveyConfig

    images, truth = data["test"][0][:args.n_fit], data["test"][1][:args.n_fit]
    start = time.perf_counter()
    survey = SurveyConfig.from_preset(data["survey"], stamp_size=args.size)
    fitted = fit_sersic(images, survey, zeropoint=data["zeropoint"], n_jobs=args.jobs)
    minutes = (time.perf_counter() - start) / 60
    good = (np.asarray(fitted["fit_flag"]) == 0) & (np.asarray(fitted["flag"]) == 0)
    r2 = r2_table(truth[good], {"fit_sersic": fitted[good],
                                "transfer": transfer.predict(images[good])})
    return {"fit_sersic": {t: float(r2[t][0]) for t in TARGETS},
            "transfer_same_galaxies": {t: float(r2[t][1]) for t in TARGETS},
            "fit_sersic_minutes": minutes, "fit_sersic_unflagged": float(good.mean())}


def run(args, target, seed):
    """All methods on one target domain and seed: ``{method: result}``."""
    data = _data(args, target, seed)
    runs = {}
    for name, estimator, minutes, extra in _estimators(args, data, seed):
        runs[name] = {"train_min": minutes, **_score(estimator, *data["test"]), **extra}
        print(f"  {target} seed {seed} {name}: R² "
              + " ".join(f"{v:.3f}" for v in runs[name]["r2"].values())
              + f" ({minutes:.1f} min)", flush=True)
        if name == "transfer" and args.n_fit:
            runs["fit_sersic"] = _fit_sersic_rows(args, data, estimator)
    return runs


def _summary(all_runs):
    """One row per (target, method): mean ± std over seeds of every number."""
    from astropy.table import Table

    rows = []
    for target, runs in all_runs.items():
        for method in runs[0]:
            seeds = [r[method] for r in runs if method in r]
            row = {"target": target, "method": method, "n_seeds": len(seeds)}
            for key, value in seeds[0].items():
                if isinstance(value, dict):
                    for param in value:
                        values = [s[key][param] for s in seeds]
                        row[f"{key}_{param}"] = np.mean(values)
                        row[f"{key}_{param}_std"] = np.std(values)
                else:
                    row[key] = np.mean([s[key] for s in seeds])
            rows.append(row)
    names = list(dict.fromkeys(k for row in rows for k in row))
    return Table(rows=[[row.get(k, np.nan) for k in names] for row in rows], names=names)


def _print(table):
    for row in table:
        cells = []
        for prefix in ("r2", "fit_sersic", "transfer_same_galaxies", "r2_in_domain"):
            if f"{prefix}_mag" in table.colnames and np.isfinite(row[f"{prefix}_mag"]):
                cells.append(prefix + " " + " / ".join(
                    f"{row[f'{prefix}_{t}']:.3f}±{row[f'{prefix}_{t}_std']:.3f}"
                    for t in TARGETS))
        extra = ""
        if "out_of_range" in table.colnames and np.isfinite(row["out_of_range"]):
            extra = f"  out of range {row['out_of_range']:.3%}, {row['train_min']:.1f} min"
        print(f"{row['target']:9s} {row['method']:34s} " + "; ".join(cells) + extra)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--targets", nargs="+", default=["hst_hard", "ground"],
                        choices=sorted(SOURCES))
    parser.add_argument("--methods", nargs="+",
                        default=["sim-only", "transfer", "supervised", "semi-supervised"])
    parser.add_argument("--alignments", nargs="+", default=list(ALIGNMENTS))
    parser.add_argument("--ablation", nargs="*", default=list(DEFAULT_ABLATION),
                        choices=list(ABLATION))
    for name in ("n_sim", "n_labelled", "n_unlabelled", "n_test", "n_fit", "size", "epochs"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=None)
    parser.add_argument("--architecture", default=None)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--output", default="bench_domain_shift.ecsv")
    args = parser.parse_args()
    for key, value in SCALES[args.scale].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    start = time.perf_counter()
    all_runs = {}
    for target in args.targets:
        all_runs[target] = []
        for seed in range(args.seeds):
            runs = run(args, target, seed)
            print(json.dumps({"target": target, "seed": seed, "args": vars(args),
                              "runs": runs}), flush=True)
            all_runs[target].append(runs)
    table = _summary(all_runs)
    table.write(args.output, overwrite=True)
    _print(table)
    print(f"whole run: {(time.perf_counter() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()

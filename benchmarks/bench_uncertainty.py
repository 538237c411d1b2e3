"""Benchmark of per-galaxy uncertainties (not a test: run by hand, report the numbers).

    python benchmarks/bench_uncertainty.py                 # 3 seeds, CPU scale (~30 min on 2 cores)
    python benchmarks/bench_uncertainty.py --seeds 1 --n-sim 800 --epochs 4   # a quick look

Source: plain simulations of the CANDELS F160W preset; target: the
realistic HST-like preset (`~astromorphnet.simulation.simulate_real_like`:
PSF varying per galaxy, correlated noise, neighbours, knots, sky residuals).
For each seed and method it reports, per parameter, the observed coverage
of the 68.27 % and 95 % central intervals and their mean width:

* in-domain (simulated test set), uncalibrated and after ``calibrate`` on
  held-out simulations;
* on the target, uncalibrated (how over-confident simulation-learnt errors are);
* on the target after ``calibrate`` on labelled target galaxies;
* on the target after ``calibrate`` with labelled held-out simulations and
  unlabelled target galaxies (weighted conformal);

for the uncertainty heads (Laplace, Gaussian, a 3-member Laplace ensemble),
then the Laplace head under transfer learning and both adversarial
estimators, with training and prediction times (prediction of the point
estimate alone: a ``loss="mae"`` network).  Prints a JSON line per run and a
table of means ± std over seeds.
"""

import argparse
import json
import time

import numpy as np

LEVELS = (0.6827, 0.95)


def _data(args, seed):
    from astromorphnet.simulation import simulate_galaxies, simulate_real_like

    ranges = {"r_eff": (1.5, 8.0), "sersic_n": (0.5, 5.0)}
    n_target = args.n_target_cal + args.n_target_test
    sims, truth = simulate_galaxies(args.n_sim + args.n_sim_cal + args.n_sim_test,
                                    "CANDELS_F160W", stamp_size=args.size, ranges=ranges,
                                    random_state=seed, n_jobs=args.jobs)
    real, real_truth = simulate_real_like(n_target, stamp_size=args.size, ranges=ranges,
                                          random_state=seed + 1000, n_jobs=args.jobs)
    a, b = args.n_sim, args.n_sim + args.n_sim_cal
    c = args.n_target_cal
    return dict(train=(sims[:a], truth[:a]), sim_cal=(sims[a:b], truth[a:b]),
                sim_test=(sims[b:], truth[b:]), target_cal=(real[:c], real_truth[:c]),
                target_test=(real[c:], real_truth[c:]), zeropoint=truth.meta["zeropoint"])


def _coverage(estimator, images, truth):
    """{param: {level: (coverage, mean width)}} on labelled cutouts."""
    from astromorphnet.catalog import labels_to_array

    dist = estimator.predict_distribution(images)
    true = labels_to_array(truth, dist.targets)
    out = {}
    for j, name in enumerate(dist.targets):
        out[name] = {}
        for level in LEVELS:
            lo, hi = dist.interval(level)
            inside = (true[:, j] >= lo[:, j]) & (true[:, j] <= hi[:, j])
            out[name][level] = (float(inside.mean()), float(np.mean(hi[:, j] - lo[:, j])))
    return out


def _evaluate(estimator, data):
    """Coverage before and after both calibrations (estimator copies are calibrated)."""
    import copy

    from astromorphnet.estimators import stack_domains

    result = {"sim": _coverage(estimator, *data["sim_test"]),
              "target": _coverage(estimator, *data["target_test"]),
              "r2_sim": _r2(estimator, *data["sim_test"]),
              "r2_target": _r2(estimator, *data["target_test"])}
    in_domain = copy.deepcopy(estimator).calibrate(*data["sim_cal"])
    result["sim_calibrated"] = _coverage(in_domain, *data["sim_test"])
    labelled = copy.deepcopy(estimator).calibrate(*data["target_cal"])
    result["target_calibrated"] = _coverage(labelled, *data["target_test"])
    X, y, domain = stack_domains(*data["sim_cal"], data["target_cal"][0])
    weighted = copy.deepcopy(estimator).calibrate(X, y, sample_domain=domain)
    result["target_weighted"] = _coverage(weighted, *data["target_test"])
    return result


def _r2(estimator, images, truth):
    """R² per parameter of the point estimates."""
    from astromorphnet.metrics import r2_table

    table = r2_table(truth, {"model": estimator.predict(images)})
    return {name: float(table[name][0]) for name in table.colnames[1:]}


def _timed_fit(estimator, *args, **kwargs):
    start = time.perf_counter()
    estimator.fit(*args, **kwargs)
    return time.perf_counter() - start


def _predict_time(estimator, images, repeat=3):
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        estimator.predict(images)
        best = min(best, time.perf_counter() - start)
    return best


def run(args, seed):
    from astromorphnet import (AdversarialDARegressor, SersicCNNRegressor,
                               TransferLearningRegressor)
    from astromorphnet.estimators import stack_domains

    data = _data(args, seed)
    common = dict(architecture="light", max_epochs=args.epochs, patience=5,
                  learning_rate=1e-3, batch_size=32, zeropoint=data["zeropoint"],
                  random_state=seed)
    runs = {}
    point = SersicCNNRegressor(loss="mae", **common)
    train_point = _timed_fit(point, *data["train"])
    runs["point (mae)"] = dict(train_s=train_point,
                               predict_s=_predict_time(point, data["target_test"][0]),
                               r2_sim=_r2(point, *data["sim_test"]),
                               r2_target=_r2(point, *data["target_test"]))
    heads = {"laplace": dict(loss="laplace"), "gaussian": dict(loss="gaussian"),
             "laplace ensemble (3)": dict(loss="laplace", n_members=3)}
    sim_only = None
    for name, params in heads.items():
        est = SersicCNNRegressor(**params, **common)
        runs[name] = dict(train_s=_timed_fit(est, *data["train"]),
                          predict_s=_predict_time(est, data["target_test"][0]),
                          **_evaluate(est, data))
        if name == "laplace":
            sim_only = est
    tl = TransferLearningRegressor(sim_only, max_epochs=args.epochs, learning_rate=1e-4,
                                   zeropoint=data["zeropoint"], random_state=seed)
    runs["transfer (laplace)"] = dict(train_s=_timed_fit(tl, *data["target_cal"]),
                                      **_evaluate(tl, data))
    for supervised in (True, False):
        X, y, domain = stack_domains(*data["train"], data["target_cal"][0],
                                     data["target_cal"][1] if supervised else None)
        da = AdversarialDARegressor(supervised=supervised, **{**common, "patience": 10})
        name = f"{'supervised' if supervised else 'semi-supervised'} DANN (laplace)"
        runs[name] = dict(train_s=_timed_fit(da, X, y, sample_domain=domain),
                          **_evaluate(da, data))
    return runs


def _table(all_runs):
    names = list(all_runs[0])
    lines = []
    for name in names:
        rows = [r[name] for r in all_runs]
        line = f"{name}: train {np.mean([r['train_s'] for r in rows]):.0f} s"
        if "predict_s" in rows[0]:
            line += f", predict {np.mean([r['predict_s'] for r in rows]):.3f} s"
        lines.append(line)
        for setting in ("r2_sim", "r2_target"):
            cells = [f"{param} {np.mean([r[setting][param] for r in rows]):.3f}"
                     f"±{np.std([r[setting][param] for r in rows]):.3f}"
                     for param in rows[0][setting]]
            lines.append(f"  {setting:18s} " + "  ".join(cells))
        for setting in ("sim", "sim_calibrated", "target", "target_calibrated",
                        "target_weighted"):
            if setting not in rows[0]:
                continue
            cells = []
            for param in rows[0][setting]:
                for level in LEVELS:
                    cov = [r[setting][param][level][0] for r in rows]
                    cells.append(f"{param[:4]}@{level:.2f} {np.mean(cov):.3f}±{np.std(cov):.3f}")
            lines.append(f"  {setting:18s} " + "  ".join(cells))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-sim", type=int, default=2000)
    parser.add_argument("--n-sim-cal", type=int, default=500)
    parser.add_argument("--n-sim-test", type=int, default=500)
    parser.add_argument("--n-target-cal", type=int, default=500)
    parser.add_argument("--n-target-test", type=int, default=1000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    all_runs = []
    for seed in range(args.seeds):
        runs = run(args, seed)
        print(json.dumps({"seed": seed, "args": vars(args), "runs": runs}, default=str),
              flush=True)
        all_runs.append(runs)
    print(_table(all_runs))


if __name__ == "__main__":
    main()

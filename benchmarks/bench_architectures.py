"""The named networks side by side: size, speed and accuracy (not a test: run by hand).

    python benchmarks/bench_architectures.py                       # light, thesis, resnet
    python benchmarks/bench_architectures.py --n-source 3000 --epochs 4 --seeds 0 \\
        --out architectures.ecsv

For each architecture: ``model.predict(x, batch_size=256)``
stamps/s at each of ``--speed-sizes`` (warm, best of ``--repeats``); then,
per seed, a `~astromorphnet.SersicCNNRegressor` trained for the same
number of epochs on ``simulate_galaxies`` (the demo's default ranges): its
parameters at the training stamp size, training seconds per epoch, and R²
per Sérsic parameter on held-out simulations (in-domain) and on
``simulate_real_like`` galaxies (shifted: trained on simulations only).  Both sets are neighbour-masked, as in the
demo.  One ECSV row per architecture and seed; ``uptime``'s load is kept
in the table's meta, because other processes on the machine slow the
speed figures.
"""

import argparse
import os
import time

import numpy as np

SOURCE_RANGES = {"mag": (16.0, 25.0), "r_eff": (1.3, 12.0, "log")}
TARGET_RANGES = {"mag": (16.0, 24.0), "r_eff": (1.5, 10.0, "log")}


def predict_speed(builder, size, n, repeats):
    """Warm ``predict`` stamps/s of ``builder``'s network on ``size``² noise."""
    # 8 outputs: the default Laplace loss's value and log-scale per target.
    model = builder((size, size, 1), 8)
    x = np.random.default_rng(0).normal(size=(n, size, size, 1)).astype(np.float32)
    model.predict(x[:256], batch_size=256, verbose=0)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(x, batch_size=256, verbose=0)
        best = max(best, n / (time.perf_counter() - start))
    return best


def datasets(args, seed):
    """Neighbour-masked training/test simulations and a real-like test set."""
    from astromorphnet.cutouts import mask_neighbours
    from astromorphnet.simulation import simulate_galaxies, simulate_real_like

    size = args.train_size
    images, truth = simulate_galaxies(args.n_source, stamp_size=size, ranges=SOURCE_RANGES,
                                      n_jobs=args.threads, random_state=seed)
    real, real_truth = simulate_real_like(args.n_target, stamp_size=size, ranges=TARGET_RANGES,
                                          n_jobs=args.threads, random_state=seed + 1)
    n_test = round(args.test_fraction * len(images))
    return (mask_neighbours(images[n_test:]), truth[n_test:],
            mask_neighbours(images[:n_test]), truth[:n_test],
            mask_neighbours(real), real_truth)


def train_and_score(architecture, data, args, seed):
    """Parameters, seconds per epoch and R² (in-domain, shifted) of one trained network."""
    from astromorphnet import SersicCNNRegressor
    from astromorphnet.metrics import r2_table

    x_train, y_train, x_test, y_test, real, real_truth = data
    est = SersicCNNRegressor(architecture, max_epochs=args.epochs, patience=args.epochs,
                             validation_fraction=0.0, batch_size=args.batch_size,
                             learning_rate=args.learning_rate,
                             zeropoint=y_train.meta["zeropoint"], random_state=seed)
    start = time.perf_counter()
    est.fit(x_train, y_train)
    per_epoch = (time.perf_counter() - start) / args.epochs
    return (est.model_.count_params(), per_epoch, r2_table(y_test, est.predict(x_test)),
            r2_table(real_truth, est.predict(real)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--architectures", nargs="+", default=["light", "thesis", "resnet"])
    parser.add_argument("--speed-sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--speed-n", type=int, default=2048, help="stamps per speed run")
    parser.add_argument("--repeats", type=int, default=3, help="speed runs (best kept)")
    parser.add_argument("--train-size", type=int, default=64, help="training stamp size")
    parser.add_argument("--n-source", type=int, default=3000, help="simulations (train+test)")
    parser.add_argument("--n-target", type=int, default=1000, help="real-like test galaxies")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=4, help="same for every network")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=None,
                        help="TensorFlow and simulation threads (default: all cores)")
    parser.add_argument("--out", default="bench_architectures.ecsv", help="ECSV table")
    args = parser.parse_args(argv)

    import tensorflow as tf
    from astropy.table import QTable

    from astromorphnet.catalog import TARGETS
    from astromorphnet.models import get_architecture

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    load_before = os.getloadavg()
    speeds = {}
    for name in args.architectures:
        builder = get_architecture(name)
        speeds[name] = {size: predict_speed(builder, size, args.speed_n, args.repeats)
                        for size in args.speed_sizes}
        print(name, {size: f"{s:.0f}/s" for size, s in speeds[name].items()}, flush=True)

    rows = []
    for seed in args.seeds:
        data = datasets(args, seed)
        for name in args.architectures:
            n_params, per_epoch, r2_in, r2_shift = train_and_score(name, data, args, seed)
            row = {"architecture": name, "seed": seed, "n_params": n_params,
                   **{f"predict_per_s_{size}": round(s) for size, s in speeds[name].items()},
                   "train_s_per_epoch": round(per_epoch, 1)}
            for prefix, table in (("r2_in", r2_in), ("r2_shift", r2_shift)):
                row.update({f"{prefix}_{t}": round(float(table[t][0]), 3)
                            for t in TARGETS if t in table.colnames})
            print(row, flush=True)
            rows.append(row)
    table = QTable(rows=rows)
    table.meta.update(vars(args))
    table.meta["load_average_before"] = list(load_before)
    table.meta["load_average_after"] = list(os.getloadavg())
    table.write(args.out, format="ascii.ecsv", overwrite=True)
    print(table)


if __name__ == "__main__":
    main()

"""Train, calibrate and score a shipped reference model (``astromorphnet.load_pretrained``).

Reproduces ``astromorphnet/pretrained/data/candels_f160w.pkl`` and its
metrics file (not a test: run by hand; the numbers go into
``docs/user_guide/pretrained.rst``)::

    python benchmarks/train_pretrained.py --n-train 12000 --epochs 30 --threads 2

Four independent simulated sets, all 64x64 HST/CANDELS F160W preset
(`simulate_galaxies`, the library's default parameter ranges), each from its
own seed: training (with its 10 % early-stopping split), calibration
(held-out labelled galaxies for `calibrate`, so the error intervals reach
their stated coverage in-domain), in-domain test, and the real-like target
(`simulate_real_like`, neighbours masked as ``mask_neighbours`` does) on
which the model was never trained nor calibrated.  With ``--threads`` the
run is bit-identical on machines of one kind (see the reproducibility page).
"""

import argparse
import json
import os
import platform
import time

#: Magnitude limits of the in-domain R² of bright galaxies.
MAG_CUTS = (23.0, 25.0)
DATA = os.path.join(os.path.dirname(__file__), os.pardir, "astromorphnet", "pretrained", "data")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="candels-f160w", help="registry name")
    parser.add_argument("--n-train", type=int, default=12000,
                        help="training galaxies (10%% of them for early stopping)")
    parser.add_argument("--n-calibrate", type=int, default=2000, help="calibration galaxies")
    parser.add_argument("--n-test", type=int, default=2000, help="in-domain test galaxies")
    parser.add_argument("--n-target", type=int, default=1000, help="real-like test galaxies")
    parser.add_argument("--stamp-size", type=int, default=64)
    parser.add_argument("--architecture", default="resnet")
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                        help="random flips and 90° rotations in training (the shipped "
                             "candels-f160w file predates them: --no-augment)")
    parser.add_argument("--bounded", action=argparse.BooleanOptionalAction, default=True,
                        help="bounded output link (the shipped file predates it: --no-bounded)")
    parser.add_argument("--randomised", action="store_true",
                        help="train on domain-randomised simulations of the preset "
                             "(simulate_randomised); calibration and test sets stay plain")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=30, help="most training epochs")
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2,
                        help="TensorFlow thread pools (pinned: reproducible numbers)")
    parser.add_argument("--output", default=os.path.join(DATA, "candels_f160w.pkl"),
                        help="model file; its metrics go next to it as .json")
    args = parser.parse_args()

    from astromorphnet.demo import _pin_threads

    _pin_threads(args.threads)

    from astropy import log

    from astromorphnet import SersicCNNRegressor, __version__
    from astromorphnet.cutouts import mask_neighbours
    from astromorphnet.metrics import coverage_table, r2_table
    from astromorphnet.simulation import (simulate_galaxies, simulate_randomised,
                                          simulate_real_like)

    timings = {}
    start = time.perf_counter()
    sets = {}
    for offset, (name, n) in enumerate((("train", args.n_train), ("calibrate", args.n_calibrate),
                                        ("test", args.n_test))):
        randomised = args.randomised and name == "train"
        log.info(f"Simulating {n} {name} galaxies ({args.stamp_size}x{args.stamp_size}"
                 f"{', randomised' if randomised else ''})...")
        simulate = simulate_randomised if randomised else simulate_galaxies
        sets[name] = simulate(n, "CANDELS_F160W", stamp_size=args.stamp_size, n_jobs=-1,
                              random_state=args.seed + offset)
    log.info(f"Simulating {args.n_target} real-like target galaxies...")
    target, target_truth = simulate_real_like(args.n_target, stamp_size=args.stamp_size,
                                              n_jobs=-1, random_state=args.seed + 3)
    target = mask_neighbours(target)
    timings["simulate_s"] = time.perf_counter() - start

    images, truth = sets["train"]
    estimator = SersicCNNRegressor(
        args.architecture, augment=args.augment, bounded=args.bounded,
        learning_rate=args.learning_rate, batch_size=args.batch_size, max_epochs=args.epochs, patience=args.patience, zeropoint=truth.meta["zeropoint"],
        pixel_scale=truth.meta["pixel_scale"], random_state=args.seed, verbose=2)
    log.info(f"Training ({args.architecture}, up to {args.epochs} epochs)...")
    start = time.perf_counter()
    estimator.fit(images, truth)
    timings["train_s"] = time.perf_counter() - start
    log.info(f"Trained {estimator.n_epochs_} epochs in {timings['train_s']:.0f} s")

    test_images, test_truth = sets["test"]
    coverage = {"raw": coverage_table(estimator.predict_distribution(test_images), test_truth)}
    estimator.calibrate(*sets["calibrate"])
    coverage["calibrated"] = coverage_table(estimator.predict_distribution(test_images),
                                            test_truth)
    start = time.perf_counter()
    catalog = estimator.predict(test_images)
    timings["predict_per_galaxy_ms"] = 1e3 * (time.perf_counter() - start) / len(test_images)
    r2 = r2_table(test_truth, {"in-domain": catalog})
    # The default ranges reach mag 27, below the noise: R² of the galaxies one would measure.
    bright = {cut: test_truth["mag"].value < cut for cut in MAG_CUTS}
    r2_bright = {f"mag < {cut}": (_row(r2_table(test_truth[rows], {"in-domain": catalog[rows]}))
                                  | {"n": int(rows.sum())})
                 for cut, rows in bright.items()}
    r2_target = r2_table(target_truth, {"real-like": estimator.predict(target)})

    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    # Users' predictions should not show training's progress output.
    estimator.set_params(verbose=0).save(args.output)
    metrics = {
        "name": args.name, "model_id": estimator.model_id_,
        "settings": {k: v for k, v in vars(args).items() if k != "output"},
        "n_epochs": estimator.n_epochs_,
        "r2_in_domain": _row(r2), "r2_in_domain_bright": r2_bright,
        "r2_real_like": _row(r2_target),
        "n_test": len(test_images), "n_real_like": len(target),
        "coverage_in_domain": {state: {row["parameter"]: {c: round(float(row[c]), 3)
                                                          for c in table.colnames
                                                          if c not in ("parameter", "unit")}
                                       for row in table}
                               for state, table in coverage.items()},
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"{args.threads} TensorFlow threads",
        "file_bytes": os.path.getsize(args.output), "astromorphnet": __version__,
    }
    with open(os.path.splitext(args.output)[0] + ".json", "w") as f:
        json.dump(metrics, f, indent=2)
    print(json.dumps(metrics, indent=2))


def _row(table):
    return {c: round(float(table[c][0]), 4) for c in table.colnames[1:]}


if __name__ == "__main__":
    main()

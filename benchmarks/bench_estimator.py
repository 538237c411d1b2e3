"""Benchmarks of SersicCNNRegressor (not a test: run by hand, report the numbers).

    python benchmarks/bench_estimator.py overhead       # estimator vs bare Keras, same run
    python benchmarks/bench_estimator.py throughput     # train and predict stamps/s, 64² and 128²
    python benchmarks/bench_estimator.py memory         # peak RSS of predict, 100,000 64² stamps
    python benchmarks/bench_estimator.py train-memory   # peak RSS of fit streaming from HDF5
    python benchmarks/bench_estimator.py log-targets --epochs 25   # R², log10 or linear r_eff, n

``--mixed-precision`` runs ``throughput`` under Keras's ``mixed_float16``
policy (for GPUs with tensor cores).  On a GPU (the issue's goals: 20,000
train and 50,000 predict stamps/s at 128²)::

    python benchmarks/bench_estimator.py throughput --mixed-precision --n 65536 \
        --batch-size 512 --architectures resnet light

Images are synthetic (elliptical Gaussians + noise): the networks' speed does
not depend on what is in the pixels, and drawing them costs nothing.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def synthetic(n, size, seed=0):
    """``n`` noisy elliptical blobs of ``size``² and (n, 4) labels in catalog units."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    images = np.empty((n, size, size), np.float32)
    labels = np.column_stack([rng.uniform(18, 24, n), rng.uniform(1.5, size / 6, n),
                              rng.uniform(0.5, 4, n), rng.uniform(0, 0.8, n)])
    for i, (mag, r, _, e) in enumerate(labels):
        profile = np.exp(-0.5 * ((xx / r) ** 2 + (yy / (r * (1 - e))) ** 2))
        images[i] = profile / profile.sum() * 10 ** (-0.4 * (mag - 25.94))
    images += rng.normal(0, 0.008, images.shape).astype(np.float32)
    return images, labels


def _estimator(architecture, epochs, **kw):
    from astromorphnet import SersicCNNRegressor

    return SersicCNNRegressor(architecture, max_epochs=epochs, patience=epochs,
                              validation_fraction=0.0, zeropoint=25.94, random_state=0, **kw)


def overhead(args):
    """Wall time of estimator fit/predict vs keras fit/predict on the same arrays."""
    import keras

    from astromorphnet._input import as_stamps

    images, labels = synthetic(args.n, args.size)
    est = _estimator(args.architecture, args.epochs)
    t0 = time.perf_counter()
    est.fit(images, labels)
    t_est_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    est.predict(images)
    t_est_pred = time.perf_counter() - t0

    # The same network and targets, fed the arrays the estimator feeds it.
    x, _ = est._read(as_stamps(images), 0, len(images))
    z = est.target_scaler_.transform(est._encode(labels, np.full(len(labels), 25.94)))
    keras.utils.set_random_seed(0)
    model = est._build_model(4)
    t0 = time.perf_counter()
    model.fit(x, z, epochs=args.epochs, batch_size=est.batch_size, shuffle=True, verbose=0)
    t_keras_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.predict(x, batch_size=256, verbose=0)
    t_keras_pred = time.perf_counter() - t0
    return {"n": args.n, "size": args.size, "architecture": args.architecture,
            "epochs": args.epochs,
            "fit_s": {"estimator": t_est_fit, "keras": t_keras_fit,
                      "overhead_pct": 100 * (t_est_fit / t_keras_fit - 1)},
            "predict_s": {"estimator": t_est_pred, "keras": t_keras_pred,
                          "overhead_pct": 100 * (t_est_pred / t_keras_pred - 1)}}


def throughput(args):
    """Train and predict stamps/s per architecture and stamp size.

    Predict: one call over ``args.n`` stamps after a warm-up call (tracing).
    Train: an epoch over ``args.n`` stamps, half the difference between fits
    of three epochs and of one (each fit builds and traces its network anew,
    which the difference cancels); meaningful for ``args.n`` of thousands.
    """
    import keras
    import tensorflow as tf

    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    results = []
    for size in args.sizes:
        images, labels = synthetic(args.n, size)
        for architecture in args.architectures:
            seconds = {}
            for epochs in (1, 3):
                t0 = time.perf_counter()
                est = _estimator(architecture, epochs, batch_size=args.batch_size)
                est.fit(images, labels)
                seconds[epochs] = time.perf_counter() - t0
            est.predict(images[:256])  # warm-up: tracing
            t0 = time.perf_counter()
            est.predict(images)
            dt = time.perf_counter() - t0
            results.append({"size": size, "architecture": architecture, "device": device,
                            "policy": keras.mixed_precision.global_policy().name,
                            "batch_size": args.batch_size,
                            "train_stamps_per_s": 2 * args.n / (seconds[3] - seconds[1]),
                            "predict_stamps_per_s": args.n / dt})
    return results


def memory(args):
    """Peak RSS of predict over a memory-mapped file of ``args.n`` stamps, in a child."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "stamps.npy")
        stack = np.lib.format.open_memmap(path, "w+", np.float32, (args.n, 64, 64))
        chunk_images, labels = synthetic(2048, 64)
        for start in range(0, args.n, 2048):
            stop = min(start + 2048, args.n)
            stack[start:stop] = chunk_images[:stop - start]
        stack.flush()
        del stack
        model_path = os.path.join(tmp, "model.pkl")
        _estimator("light", 1).fit(chunk_images[:256], labels[:256]).save(model_path)
        child = (
            "import json, resource, sys, time, numpy as np\n"
            "from astromorphnet import SersicCNNRegressor\n"
            "est = SersicCNNRegressor.load(sys.argv[1])\n"
            "x = np.load(sys.argv[2], mmap_mode='r')\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
            "t0 = time.perf_counter(); cat = est.predict(x); dt = time.perf_counter() - t0\n"
            "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
            "print(json.dumps({'n': len(cat), 'seconds': dt, 'peak_rss_mb': peak,\n"
            "                  'rss_before_predict_mb': before,\n"
            "                  'input_mb': x.nbytes / 2**20}))\n")
        out = subprocess.run([sys.executable, "-c", child, model_path, path],
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])


def train_memory(args):
    """Peak RSS of ``fit`` streaming an HDF5 set of ``args.n`` 64² stamps, in a child.

    Run it at two sizes: a streamed fit's memory does not grow with the set.
    """
    import h5py

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "train.h5")
        chunk_images, chunk_labels = synthetic(2048, 64)
        with h5py.File(path, "w") as f:
            images = f.create_dataset("images", (args.n, 64, 64), np.float32,
                                      chunks=(64, 64, 64))
            labels = np.empty((args.n, 4))
            for start in range(0, args.n, 2048):
                stop = min(start + 2048, args.n)
                images[start:stop] = chunk_images[:stop - start]
                labels[start:stop] = chunk_labels[:stop - start]
        np.save(os.path.join(tmp, "labels.npy"), labels)
        child = (
            "import json, resource, sys, time, h5py, numpy as np\n"
            "from astromorphnet import SersicCNNRegressor\n"
            "d = sys.argv[1]\n"
            "est = SersicCNNRegressor('light', max_epochs=1, batch_size=64, zeropoint=25.94,\n"
            "                         random_state=0)\n"
            "with h5py.File(d + '/train.h5') as f:\n"
            "    t0 = time.perf_counter()\n"
            "    est.fit(f['images'], np.load(d + '/labels.npy'))\n"
            "    dt = time.perf_counter() - t0\n"
            "    nbytes = f['images'].nbytes\n"
            "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
            "print(json.dumps({'n': int(sys.argv[2]), 'epochs': est.n_epochs_,\n"
            "                  'fit_seconds': dt, 'peak_rss_mb': peak,\n"
            "                  'input_mb': nbytes / 2**20}))\n")
        out = subprocess.run([sys.executable, "-c", child, tmp, str(args.n)],
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])


def log_targets(args):
    """Test-set R² per parameter with r_eff and n regressed in log10 or linearly."""
    from astromorphnet import SersicCNNRegressor
    from astromorphnet.metrics import r2_table
    from astromorphnet.simulation import simulate_galaxies

    images, truth = simulate_galaxies(args.n, stamp_size=48, n_jobs=-1, random_state=0,
                                      ranges={"mag": (16, 25), "r_eff": (1.3, 12)})
    train, test = slice(0, int(0.8 * args.n)), slice(int(0.8 * args.n), args.n)
    catalogs = {}
    for name, logs in (("log10 r_eff, n", ("r_eff", "sersic_n")), ("linear", ())):
        est = SersicCNNRegressor("light", learning_rate=1e-3, batch_size=32,
                                 max_epochs=args.epochs, patience=5, log_targets=logs,
                                 zeropoint=truth.meta["zeropoint"], random_state=0)
        catalogs[name] = est.fit(images[train], truth[train]).predict(images[test])
    table = r2_table(truth[test], catalogs)
    return {row["model"]: {c: round(float(row[c]), 4) for c in table.colnames[1:]}
            for row in table}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=["overhead", "throughput", "memory", "train-memory",
                                          "log-targets"])
    parser.add_argument("--n", type=int, default=None, help="stamps")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--architecture", default="light")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--architectures", nargs="+", default=["light", "resnet", "thesis"],
                        help="throughput: the networks timed")
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 128],
                        help="throughput: the stamp sizes timed")
    parser.add_argument("--batch-size", type=int, default=256,
                        help="throughput: the training batch size")
    args = parser.parse_args()
    benchmarks = {"overhead": (overhead, 2000), "throughput": (throughput, 2048),
                  "memory": (memory, 100_000), "train-memory": (train_memory, 40_000),
                  "log-targets": (log_targets, 3000)}
    run, default_n = benchmarks[args.which]
    args.n = args.n or default_n
    result = run(args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

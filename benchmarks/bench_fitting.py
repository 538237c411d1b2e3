"""Classical Sérsic fit vs CNN inference: time per galaxy and fit accuracy (not a test).

    python benchmarks/bench_fitting.py                    # 50 fits, CNN on 1000 stamps
    python benchmarks/bench_fitting.py --n-fit 200 --n-jobs 2

Both measure the same simulated 64×64 HST/CANDELS F160W cutouts (the
reference thesis's parameter ranges).  The CNN
(``--architecture``, default ``"resnet"``, the fastest on a CPU) is
trained for one epoch only: its speed, not its accuracy, is the point.
Timings are wall-clock; the fit runs single-threaded per process, the CNN
with TensorFlow's threads, after a warm-up call (steady-state inference).
"""

import argparse
import json
import time

import numpy as np


def errors(catalog, truth):
    """Per-galaxy errors: Δmag, relative r_eff and n, Δellipticity."""
    out = {}
    for name, relative in (("mag", False), ("r_eff", True), ("sersic_n", True),
                           ("ellipticity", False)):
        fit = np.asarray(getattr(catalog[name], "value", catalog[name]), float)
        true = np.asarray(getattr(truth[name], "value", truth[name]), float)
        out[name] = fit / true - 1 if relative else fit - true
    return out


def summary(err, keep):
    return {name: float(np.nanmedian(np.abs(values[keep]))) for name, values in err.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-fit", type=int, default=50, help="galaxies fitted")
    parser.add_argument("--n-cnn", type=int, default=1000, help="stamps the CNN predicts")
    parser.add_argument("--n-jobs", type=int, default=1, help="fit worker processes")
    parser.add_argument("--size", type=int, default=64, help="stamp size")
    parser.add_argument("--architecture", default="resnet", help="the CNN's architecture")
    args = parser.parse_args(argv)

    from astromorphnet import SersicCNNRegressor
    from astromorphnet.fitting import fit_sersic
    from astromorphnet.simulation import SurveyConfig, simulate_galaxies

    survey = SurveyConfig.from_preset("CANDELS_F160W", stamp_size=args.size)
    n = max(args.n_fit, args.n_cnn)
    t0 = time.perf_counter()
    images, truth = simulate_galaxies(n, survey, random_state=0)
    print(f"simulated {n} {args.size}² stamps in {time.perf_counter() - t0:.1f} s")

    fit_sersic(images[:1], survey)  # warm up (imports, PSF kernel)
    t0 = time.perf_counter()
    catalog = fit_sersic(images[:args.n_fit], survey, n_jobs=args.n_jobs)
    fit_ms = 1e3 * (time.perf_counter() - t0) / args.n_fit

    cnn = SersicCNNRegressor(architecture=args.architecture, max_epochs=1, zeropoint=survey.zeropoint,
                             random_state=0)
    t0 = time.perf_counter()
    cnn.fit(images[:args.n_cnn], truth[:args.n_cnn])
    train_s = time.perf_counter() - t0
    # Warm up on the very call timed below: graph tracing (once per batch shape)
    # is a one-off cost, negligible over a survey's catalog.
    cnn.predict(images[:args.n_cnn])
    t0 = time.perf_counter()
    cnn.predict(images[:args.n_cnn])
    cnn_ms = 1e3 * (time.perf_counter() - t0) / args.n_cnn

    err = errors(catalog, truth[:args.n_fit])
    ok = catalog["fit_flag"] == 0
    bright = ok & (truth["mag"][:args.n_fit].value < 24)
    result = {
        "stamp_size": args.size, "n_fit": args.n_fit, "n_jobs": args.n_jobs,
        "architecture": args.architecture,
        "fit_ms_per_galaxy": round(fit_ms, 1),
        "cnn_predict_ms_per_galaxy": round(cnn_ms, 3), "cnn_train_s_1_epoch": round(train_s, 1),
        "fit_over_cnn": round(fit_ms / cnn_ms, 1),
        "fit_flagged": int((~ok).sum()),
        "fit_median_abs_error_all": summary(err, np.ones(args.n_fit, bool)),
        "fit_median_abs_error_unflagged_mag_lt_24": summary(err, bright),
        "n_unflagged_mag_lt_24": int(bright.sum()),
    }
    print(f"fit_sersic: {fit_ms:.1f} ms/galaxy; CNN predict: {cnn_ms:.3f} ms/galaxy; "
          f"ratio {fit_ms / cnn_ms:.0f}x")
    print("median |error| (mag, ellipticity absolute; r_eff, n relative):")
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()

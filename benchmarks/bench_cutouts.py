"""Benchmark of extract_cutouts, stage by stage (not a test: run by hand, report the numbers).

    python benchmarks/bench_cutouts.py                       # 2048², ~500 galaxies
    python benchmarks/bench_cutouts.py --size 4096 --n 2000

The mosaic is synthetic (elliptical Gaussians on a sloped background with
Gaussian noise, a TAN WCS at 0.06"/pixel).  Stages are timed through the
private helpers `extract_cutouts` chains, best of ``--repeat`` runs each
(``cutouts_only`` skips the neighbour masks, for comparison); ``total`` is
`extract_cutouts` end to end.  Prints JSON.
"""

import argparse
import json
import os
import platform
import time

import numpy as np
from astropy.wcs import WCS


def synthetic_mosaic(size, n, seed=0):
    """A ``size``² mosaic with ``n`` galaxies, its WCS and the true positions."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    image = 5.0 + 0.001 * xx + rng.normal(0.0, 1.0, (size, size))
    positions = rng.uniform(0, size, (n, 2))
    half = 20
    sy, sx = np.mgrid[-half:half + 1, -half:half + 1]
    for x0, y0 in positions:
        sigma, q, theta = rng.uniform(1.5, 4.0), rng.uniform(0.3, 1.0), rng.uniform(0, np.pi)
        flux = 10 ** rng.uniform(2.5, 4.0)
        cx, cy = int(round(x0)), int(round(y0))
        dx, dy = sx + cx - x0, sy + cy - y0
        a = dx * np.cos(theta) + dy * np.sin(theta)
        b = -dx * np.sin(theta) + dy * np.cos(theta)
        stamp = np.exp(-0.5 * ((a / sigma) ** 2 + (b / (q * sigma)) ** 2))
        stamp *= flux / stamp.sum()
        ylo, yhi = max(cy - half, 0), min(cy + half + 1, size)
        xlo, xhi = max(cx - half, 0), min(cx + half + 1, size)
        image[ylo:yhi, xlo:xhi] += stamp[ylo - cy + half:yhi - cy + half,
                                         xlo - cx + half:xhi - cx + half]
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.1, 2.2]
    wcs.wcs.crpix = [size / 2 + 0.5, size / 2 + 0.5]
    wcs.wcs.cdelt = [-0.06 / 3600, 0.06 / 3600]
    return image.astype(np.float32), wcs, positions


def best_of(repeat, func):
    """Smallest wall time of ``repeat`` calls, and the last result."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="mosaic side in pixels")
    parser.add_argument("--n", type=int, default=500, help="number of galaxies")
    parser.add_argument("--cutout", type=int, default=64, help="cutout side in pixels")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    from astromorphnet.cutouts import _extract as ex
    from astromorphnet.cutouts import extract_cutouts

    t0 = time.perf_counter()
    mosaic, wcs, _ = synthetic_mosaic(args.size, args.n)
    build = time.perf_counter() - t0
    weight = np.ones_like(mosaic)
    shape = (args.cutout, args.cutout)
    options = dict(box_size=64, filter_size=3, threshold=1.5, n_pixels=10, kernel_fwhm=3.0,
                   n_levels=32, contrast=0.001, dilate=2)

    timings = {}
    timings["validate"], image = best_of(args.repeat, lambda: ex._unpack(
        mosaic, error=None, weight=weight, mask=None, wcs=wcs))

    def background():
        bkg = ex._background(image.data, image.bad, options["box_size"],
                             options["filter_size"])
        # Background2D interpolates its maps at each access: count that here, once.
        return bkg, bkg.background, bkg.background_rms

    timings["background2d"], (bkg, sky, rms) = best_of(args.repeat, background)
    timings["subtract"], data = best_of(args.repeat,
                                        lambda: ex._subtract(image.data, sky, image.bad))
    timings["smooth"], convolved = best_of(args.repeat,
                                           lambda: ex._smooth(data, options["kernel_fwhm"]))
    threshold = options["threshold"] * rms
    timings["detect"], segm = best_of(args.repeat, lambda: ex._detect(
        convolved, threshold, options["n_pixels"], image.bad))
    timings["deblend"], deblended = best_of(args.repeat, lambda: ex._deblend(
        convolved, segm, options["n_pixels"], options["n_levels"], options["contrast"]))
    timings["source_catalog"], (x, y, labels) = best_of(
        args.repeat, lambda: ex._centroids(data, deblended, convolved, image.bad))
    timings["cutouts_only"], _ = best_of(args.repeat, lambda: ex._make_cutouts(
        data, image, None, x, y, labels, shape, options["dilate"]))
    timings["cutouts_and_neighbour_masks"], cutouts = best_of(
        args.repeat, lambda: ex._make_cutouts(data, image, deblended, x, y, labels, shape,
                                              options["dilate"]))
    timings["table"], _ = best_of(args.repeat, lambda: ex._table(
        x, y, labels, *ex._segment_sums(data, deblended, labels),
        [c.meta["flag"] for c in cutouts], image.wcs, image.unit, {}))
    timings["sum_of_stages"] = sum(v for k, v in timings.items() if k != "cutouts_only")
    timings["total"], result = best_of(args.repeat, lambda: extract_cutouts(
        mosaic, size=args.cutout, weight=weight, wcs=wcs, **options))

    import photutils

    report = {
        "mosaic": list(mosaic.shape), "galaxies_injected": args.n,
        "segments_before_deblend": int(segm.n_labels),
        "sources_detected": len(result.cutouts), "cutout": list(shape),
        "padded": int(sum(c.meta["flag"] & 1 for c in result.cutouts)),
        "seconds": {k: round(v, 4) for k, v in timings.items()},
        "cutouts_per_s_total": round(len(result.cutouts) / timings["total"], 1),
        "build_mosaic_s": round(build, 2), "repeat": args.repeat,
        "photutils": photutils.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "cpus": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

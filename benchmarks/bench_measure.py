"""Benchmark of astromorphnet.measure, mosaic to catalog (not a test: run by hand, report the numbers).

    python benchmarks/bench_measure.py throughput              # galaxies/s: 1 process, 1 and 2 workers
    python benchmarks/bench_measure.py throughput --size 2048 --n 500
    python benchmarks/bench_measure.py memory --size 16384     # peak RSS, tiled vs whole image

The mosaic is `bench_cutouts.synthetic_mosaic` (elliptical Gaussians on a
sloped sky, a TAN WCS at 0.06"/pixel) written to a FITS file with a
``MAGZERO``; the network's speed does not depend on what is in the pixels.
The model is `measure`'s default, the shipped ``candels-f160w`` (or
``--model PATH``, a saved estimator).

``throughput`` times `measure` end to end (read, detect, deblend, cut out,
predict) in this process and on a ``LocalCluster`` of 1 and 2 single-thread
worker processes, each warm (the second of two runs: workers started).  The
default tiles cut the mosaic into 2x2 (half its side plus the overlap), so
that two workers have work of equal size; each timed cluster run includes
saving the model and sending its file to the workers, which loaded it in the
first run.  ``memory`` runs `measure` in fresh processes, once on
the whole image and once in tiles, and reports the peak resident memory of
each above that of a process that only loaded the model.  Prints JSON.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_cutouts import synthetic_mosaic  # noqa: E402

ZEROPOINT = 25.94
DETECTION = dict(size=64, box_size=64)


def write_mosaic(path, size, n, block=2048):
    """Write a ``size``² synthetic mosaic by blocks (never all of it in memory)."""
    from astropy.io import fits

    per_block = max(1, round(n * block**2 / size**2))
    _, wcs, _ = synthetic_mosaic(64, 0)
    wcs.wcs.crpix = [size / 2 + 0.5, size / 2 + 0.5]
    header = fits.PrimaryHDU(np.zeros((size, 1), np.float32)).header
    header["NAXIS1"] = size
    header.update(wcs.to_header())
    header.update(BUNIT="ELECTRONS/S", MAGZERO=ZEROPOINT)
    stream = fits.StreamingHDU(path, header)
    seed = 0
    for y0 in range(0, size, block):
        rows = min(block, size - y0)
        strip = np.empty((rows, size), np.float32)
        for x0 in range(0, size, block):
            image, _, _ = synthetic_mosaic(block, per_block, seed=seed)
            seed += 1
            strip[:, x0:x0 + block] = image[:rows, :min(block, size - x0)]
        stream.write(strip)
    stream.close()
    return path


def timed(func, repeat=2):
    """Wall time of the last of ``repeat`` calls (the first warms up), and its result."""
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = func()
        seconds = time.perf_counter() - t0
    return seconds, result


def throughput(args, folder):
    from distributed import Client, LocalCluster

    from astromorphnet import load, load_pretrained, measure

    mosaic = write_mosaic(os.path.join(folder, "mosaic.fits"), args.size, args.n)
    # Loaded here: the single-process timing is of measuring, not of loading.
    model = load_pretrained() if args.model is None else load(args.model)
    options = dict(DETECTION, tile_size=args.tile, progress=False)
    report = {}
    seconds, catalog = timed(lambda: measure(mosaic, model, **options))
    report["single_process"] = {"seconds": round(seconds, 2), "galaxies": len(catalog),
                                "galaxies_per_s": round(len(catalog) / seconds, 1)}
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            seconds, catalog = timed(lambda: measure(mosaic, args.model, client=client,
                                                     **options))
        report[f"dask_{workers}_workers"] = {
            "seconds": round(seconds, 2), "galaxies": len(catalog),
            "galaxies_per_s": round(len(catalog) / seconds, 1)}
    return {"mosaic": [args.size] * 2, "galaxies_injected": args.n, "tile_size": args.tile,
            "model": args.model or "candels-f160w", **report}


_CHILD = """
import resource, sys, time
from astromorphnet import load, load_pretrained, measure
model = load_pretrained() if sys.argv[1] == "shipped" else load(sys.argv[1])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tile = None if sys.argv[3] == "none" else int(sys.argv[3])
t0 = time.perf_counter()
catalog = measure(sys.argv[2], model, size=64, box_size=64, tile_size=tile, progress=False)
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(base, peak, len(catalog), seconds)
"""


def memory(args, folder):
    mosaic = write_mosaic(os.path.join(folder, "large.fits"), args.size, args.n)
    report = {"mosaic": [args.size] * 2, "galaxies_injected": args.n,
              "file_MiB": round(os.path.getsize(mosaic) / 2**20, 1)}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    for tile in ([args.tile] if args.skip_whole else [None, args.tile]):
        out = subprocess.run([sys.executable, "-c", _CHILD, args.model or "shipped", mosaic,
                              str(tile).lower()], capture_output=True, text=True, env=env,
                             check=True).stdout.split()
        base, peak, n, seconds = int(out[-4]), int(out[-3]), int(out[-2]), float(out[-1])
        report["whole_image" if tile is None else f"tiles_{tile}"] = {
            "peak_rss_MiB": round(peak / 1024, 1),  # ru_maxrss is in KiB on Linux
            "above_model_loaded_MiB": round((peak - base) / 1024, 1),
            "galaxies": n, "seconds": round(seconds, 1)}
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("throughput", "memory"))
    parser.add_argument("--size", type=int, default=None,
                        help="mosaic side in pixels (2048 for throughput, 16384 for memory)")
    parser.add_argument("--n", type=int, default=None,
                        help="galaxies injected (default: ~125 per million pixels)")
    parser.add_argument("--tile", type=int, default=None,
                        help="tile side in pixels (default: 2x2 tiles for throughput, "
                             "1024 for memory)")
    parser.add_argument("--model", default=None,
                        help="a saved estimator (default: the shipped candels-f160w)")
    parser.add_argument("--skip-whole", action="store_true",
                        help="memory: measure the tiled run only")
    args = parser.parse_args(argv)
    args.size = args.size or (4096 if args.what == "throughput" else 16384)
    if args.tile is None:
        from astromorphnet.pipeline._tiles import default_overlap

        args.tile = (args.size // 2 + default_overlap((DETECTION["size"],) * 2)
                     if args.what == "throughput" else 1024)
    args.n = args.n or int(125 * args.size**2 / 1e6)

    with tempfile.TemporaryDirectory() as folder:
        run = throughput if args.what == "throughput" else memory
        report = run(args, folder)
    report.update(python=platform.python_version(), cpus=os.cpu_count())
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

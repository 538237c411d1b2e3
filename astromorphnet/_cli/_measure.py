"""``astromorphnet measure``: survey images to a Sérsic catalog (`astromorphnet.measure`)."""

import contextlib
import os

from astropy import log

from ._common import (UsageError, add_overwrite, add_quiet, check_output, float_in, input_file,
                      int_at_least)

__all__ = ["add_parser", "model_argument", "run"]


def add_parser(sub):
    """Add the ``measure`` subcommand to ``sub`` (an argparse subparsers object)."""
    parser = sub.add_parser(
        "measure", help="detect the galaxies of FITS images and measure them into a catalog",
        description="Detect the galaxies of FITS images, cut them out and measure their "
                    "Sérsic parameters with a CNN, into one catalog (FITS, ECSV, Parquet or "
                    "CSV by the extension of -o), on this machine or a Dask cluster.")
    add = parser.add_argument
    add("images", nargs="+", type=input_file, metavar="IMAGE", help="FITS images (mosaics)")
    add("-o", "--output", required=True, metavar="CATALOG",
        help="catalog to write: .fits, .fits.gz, .ecsv, .parquet or .csv")
    add("--model", default=None, metavar="PATH_OR_NAME",
        help="a saved estimator's file, or a shipped model's name (default: the shipped "
             "'candels-f160w')")
    add("--size", type=int_at_least(8), default=64, metavar="PIXELS",
        help="cutout size (default: %(default)s)")
    add("--batch-size", type=int_at_least(1), default=256, metavar="N",
        help="cutouts per prediction batch (default: %(default)s)")
    add("--tile-size", type=int_at_least(16), default=None, metavar="PIXELS",
        help="process each image in overlapping tiles of this size, in bounded memory "
             "(default: whole images)")
    add("--tile-overlap", type=int_at_least(1), default=None, metavar="PIXELS",
        help="pixels shared by neighbouring tiles, at least the cutout size (default: the "
             "cutout size plus 32)")
    add("--zeropoint", type=float_in(), default=None, metavar="MAG",
        help="AB zeropoint of images whose header gives none")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int_at_least(1), default=None, metavar="N",
                       help="run on a local Dask cluster of N single-threaded worker "
                            "processes (needs dask[distributed])")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run on the Dask cluster whose scheduler is at ADDRESS, e.g. "
                            "tcp://10.0.0.1:8786 (needs dask[distributed])")
    add_overwrite(parser)
    add_quiet(parser)
    parser.set_defaults(run=run)
    return parser


def model_argument(text):
    """``--model`` as `astromorphnet.measure` takes it: None, a file's path or a shipped name.

    Raises
    ------
    UsageError
        If ``text`` names neither a file nor a shipped model.
    """
    if text is None or os.path.isfile(text):
        return text
    try:
        from ..pretrained import list_pretrained

        shipped = list(list_pretrained())
    except ImportError:
        shipped = []
    if text in shipped:
        return text
    raise UsageError(f"argument --model: no file {text!r}, nor a shipped model of that name "
                     f"(shipped: {', '.join(shipped) or 'none'})")


@contextlib.contextmanager
def dask_client(workers=None, scheduler=None):
    """A `dask.distributed.Client` for ``--workers``/``--scheduler``, or None; closed after."""
    if workers is None and scheduler is None:
        yield None
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as error:
        option = "--workers" if scheduler is None else "--scheduler"
        raise UsageError(f"argument {option}: needs dask[distributed] ({error}); "
                         "pip install 'dask[distributed]'") from error
    with contextlib.ExitStack() as stack:
        if scheduler is None:
            log.info(f"Starting a local Dask cluster of {workers} workers")
            # The dashboard on any free port: the usual 8787 may be another cluster's.
            cluster = stack.enter_context(LocalCluster(
                n_workers=workers, threads_per_worker=1, dashboard_address=":0"))
            client = stack.enter_context(Client(cluster))
        else:
            log.info(f"Connecting to the Dask scheduler at {scheduler}")
            client = stack.enter_context(Client(scheduler))
        yield client


def run(args):
    """Measure ``args.images`` into the catalog ``args.output``."""
    from .. import measure
    from ..catalog import catalog_format, write_catalog

    try:
        catalog_format(args.output)
    except ValueError as error:
        raise UsageError(f"argument -o/--output: {error}") from error
    check_output(args.output, args.overwrite)
    from ..pipeline._measure import _check_tiling

    try:
        _check_tiling(args.tile_size, args.tile_overlap, (args.size, args.size))
    except ValueError as error:
        raise UsageError(f"argument --tile-size/--tile-overlap: {error}") from error
    model = model_argument(args.model)
    with dask_client(args.workers, args.scheduler) as client:
        log.info(f"Measuring {len(args.images)} image(s) with "
                 f"{'the shipped default model' if model is None else model}")
        catalog = measure(args.images, model, size=args.size, zeropoint=args.zeropoint,
                          batch_size=args.batch_size, tile_size=args.tile_size,
                          tile_overlap=args.tile_overlap, client=client)
    write_catalog(catalog, args.output, overwrite=args.overwrite)
    log.info(f"Wrote {len(catalog)} galaxies to {args.output}")
    return 0

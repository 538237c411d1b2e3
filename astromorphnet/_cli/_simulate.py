"""``astromorphnet simulate``: a survey preset's simulated cutouts into an HDF5 set."""

from astropy import log

from ._common import (UsageError, add_overwrite, add_quiet, add_seed, check_output,
                      int_at_least)

__all__ = ["add_parser", "run"]


def add_parser(sub):
    """Add the ``simulate`` subcommand to ``sub`` (an argparse subparsers object)."""
    from ..simulation import PRESETS

    parser = sub.add_parser(
        "simulate", help="simulate galaxies of a survey preset into an HDF5 training set",
        description="Simulate Sérsic galaxies seen through a survey preset's PSF and noise, "
                    "with their true parameters, into an HDF5 set (resumable: run the same "
                    "command again after an interruption).")
    add = parser.add_argument
    add("preset", choices=sorted(PRESETS), metavar="PRESET",
        help=f"survey preset: {', '.join(sorted(PRESETS))}")
    add("-n", "--n-galaxies", type=int_at_least(1), required=True, metavar="N",
        help="number of galaxies")
    add("-o", "--output", required=True, metavar="SET.h5", help="HDF5 file to write")
    add("--stamp-size", type=int_at_least(8), default=None, metavar="PIXELS",
        help="cutout size (default: the preset's)")
    add("--real-like", action="store_true",
        help="a stand-in for real cutouts: real galaxies' parameter distribution, "
             "star-forming knots, neighbours, sky gradients and cosmic rays")
    add("--jobs", type=int_at_least(1), default=1, metavar="N",
        help="worker processes (the file does not depend on it; default: %(default)s)")
    add_seed(parser)
    add_overwrite(parser)
    add_quiet(parser)
    parser.set_defaults(run=run)
    return parser


def run(args):
    """Simulate into ``args.output``."""
    from ..simulation import REAL_LIKE_RANGES, REAL_LIKE_REALISM, SurveyConfig, simulate_to_hdf5
    from ..simulation._hdf5 import _check_destination

    check_output(args.output, args.overwrite)
    try:
        survey = SurveyConfig.from_preset(args.preset, **(
            {} if args.stamp_size is None else {"stamp_size": args.stamp_size}))
        _check_destination(args.output, args.overwrite)  # replaces only a simulated set
    except (OSError, ValueError) as error:
        raise UsageError(f"argument -o/--output: {error}") from error
    kind = "real-like " if args.real_like else ""
    log.info(f"Simulating {args.n_galaxies} {kind}galaxies of {args.preset} "
             f"({survey.stamp_size}x{survey.stamp_size} pixels) into {args.output}")
    simulate_to_hdf5(args.output, args.n_galaxies, survey,
                     ranges=REAL_LIKE_RANGES if args.real_like else None,
                     realism=REAL_LIKE_REALISM if args.real_like else None,
                     n_jobs=args.jobs, random_state=args.seed, overwrite=args.overwrite,
                     verbose=not args.quiet)
    log.info(f"Wrote {args.output}")
    return 0

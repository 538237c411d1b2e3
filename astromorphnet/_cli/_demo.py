"""``astromorphnet demo``: the reference thesis's experiment on built-in simulated data."""

from ._common import MAX_SEED, UsageError, add_quiet, int_at_least

__all__ = ["add_parser", "run"]


def add_parser(sub):
    """Add the ``demo`` subcommand to ``sub`` (an argparse subparsers object)."""
    from ..demo import COUNTS

    parser = sub.add_parser(
        "demo", help="the reference thesis's experiment: sim-only, transfer learning and "
                     "both DANNs on built-in simulated data, with their R² tables")
    add = parser.add_argument
    add("--scale", default="default", choices=["default", "thesis"],
        help="sizes: 'default' runs in minutes on a CPU, 'thesis' uses the reference "
             "thesis's sizes, 128x128 stamps and network (a GPU job) (default: %(default)s)")
    for key, least in COUNTS.items():
        add(f"--{key.replace('_', '-')}", type=int_at_least(least), default=None,
            metavar="N", help=f"override the scale's {key.replace('_', ' ')}")
    add("--output-dir", default="astromorphnet-demo",
        help="where catalogs, tables and plots go (default: %(default)s)")
    add("--no-plots", action="store_true", help="skip the plots")
    add("--seed", type=int_at_least(0, MAX_SEED), default=0,
        help="random seed (default: %(default)s)")
    add("--threads", type=int_at_least(1), default=None, metavar="N",
        help="pin TensorFlow to N threads per pool, so that a seeded run gives the same "
             "numbers on every machine of one kind, whatever its core count (default: all "
             "cores; the numbers then depend on their count)")
    add_quiet(parser)
    parser.set_defaults(run=run)
    return parser


def run(args):
    """Run the demo; print its R² tables when ``--quiet`` (else the demo prints them)."""
    from .. import demo

    settings = dict(output_dir=args.output_dir, plots=not args.no_plots,
                    random_state=args.seed, verbose=0 if args.quiet else 1,
                    threads=args.threads,
                    **{key: getattr(args, key) for key in demo.COUNTS
                       if getattr(args, key) is not None})
    try:
        demo.check_settings(args.scale, **settings)
    except ValueError as error:
        raise UsageError(str(error)) from error
    result = demo.run_demo(args.scale, **settings)
    if args.quiet:
        demo.print_results(result)
    return 0

"""Command line: ``astromorphnet demo`` (also ``python -m astromorphnet demo``)."""

import argparse
import sys

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors fit on one line (no usage block)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _int_at_least(least, most=None):
    """An argparse ``type``: an integer in ``[least, most]``."""
    accepted = f"an integer >= {least}" if most is None else f"an integer in [{least}, {most}]"

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {accepted}; got {text!r}") from None
        if value < least or (most is not None and value > most):
            raise argparse.ArgumentTypeError(f"expected {accepted}; got {text!r}")
        return value

    return parse


def _parser():
    from . import __version__
    from .demo import COUNTS, MAX_SEED

    parser = _Parser(
        prog="astromorphnet",
        description="Galaxy structure from image cutouts with convolutional networks.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    demo_parser = sub.add_parser(
        "demo", help="the reference thesis's experiment: sim-only, transfer learning and "
                     "both DANNs on built-in simulated data, with their R² tables")
    add = demo_parser.add_argument
    add("--scale", default="default", choices=["default", "thesis"],
        help="sizes: 'default' runs in minutes on a CPU, 'thesis' uses the reference "
             "thesis's sizes, 128x128 stamps and network (a GPU job) (default: %(default)s)")
    for key, least in COUNTS.items():
        add(f"--{key.replace('_', '-')}", type=_int_at_least(least), default=None,
            metavar="N", help=f"override the scale's {key.replace('_', ' ')}")
    add("--output-dir", default="astromorphnet-demo",
        help="where catalogs, tables and plots go (default: %(default)s)")
    add("--no-plots", action="store_true", help="skip the plots")
    add("--seed", type=_int_at_least(0, MAX_SEED), default=0,
        help="random seed (default: %(default)s)")
    add("--threads", type=_int_at_least(1), default=None, metavar="N",
        help="pin TensorFlow to N threads per pool, so that a seeded run gives the same "
             "numbers on every machine of one kind, whatever its core count (default: all "
             "cores; the numbers then depend on their count)")
    add("-q", "--quiet", action="store_true",
        help="no progress output; the R² tables are still printed")
    return parser, demo_parser


def main(argv=None):
    """Entry point of the ``astromorphnet`` command.

    Every argument is checked before any work: a bad one ends the command
    with one line on standard error and exit status 2.  Progress goes
    through `astropy.log` and Keras (a progress bar on a terminal, one plain
    line per epoch in a log file); the R² tables go to standard output.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    status : int
        Exit status: 0 on success, 130 when interrupted (Ctrl-C).

    Raises
    ------
    SystemExit
        With status 2 on a bad argument, 0 after ``--help`` or ``--version``.

    Examples
    --------
    >>> from astromorphnet.__main__ import main
    >>> main(["demo", "--n-source", "0"])
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    parser, demo_parser = _parser()
    args = parser.parse_args(argv)

    from . import demo

    settings = dict(output_dir=args.output_dir, plots=not args.no_plots,
                    random_state=args.seed, verbose=0 if args.quiet else 1,
                    threads=args.threads,
                    **{key: getattr(args, key) for key in demo.COUNTS
                       if getattr(args, key) is not None})
    try:
        demo.check_settings(args.scale, **settings)
    except ValueError as error:
        demo_parser.error(str(error))
    try:
        result = demo.run_demo(args.scale, **settings)
    except KeyboardInterrupt:
        print(f"{demo_parser.prog}: interrupted", file=sys.stderr)
        return 130
    if args.quiet:
        demo.print_results(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

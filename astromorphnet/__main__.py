"""Command line: ``astromorphnet demo`` (also ``python -m astromorphnet demo``)."""

import argparse
import sys

__all__ = ["main"]

#: Entries of ``astromorphnet.demo.SCALES`` the command line can override.
_OVERRIDES = ("n_source", "n_target", "stamp_size", "max_epochs", "patience",
              "fine_tune_epochs", "dann_n_source", "dann_max_epochs", "dann_patience")


def main(argv=None):
    """Entry point of the ``astromorphnet`` command.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    status : int
        Exit status.
    """
    parser = argparse.ArgumentParser(
        prog="astromorphnet",
        description="Galaxy structure from image cutouts with convolutional networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="the reference thesis's experiment: sim-only, transfer learning and "
                     "both DANNs on built-in simulated data, with their R² tables")
    demo.add_argument("--scale", default="default", choices=["default", "thesis"],
                      help="sizes: 'default' runs in minutes on a CPU, 'thesis' uses the "
                           "reference thesis's sizes, 128x128 stamps and network (a GPU "
                           "job) (default: %(default)s)")
    for key in _OVERRIDES:
        demo.add_argument(f"--{key.replace('_', '-')}", type=int, default=None,
                          help=f"override the scale's {key.replace('_', ' ')}")
    demo.add_argument("--output-dir", default="astromorphnet-demo",
                      help="where catalogs, tables and plots go (default: %(default)s)")
    demo.add_argument("--no-plots", action="store_true", help="skip the plots")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    args = parser.parse_args(argv)

    from .demo import run_demo

    overrides = {key: getattr(args, key) for key in _OVERRIDES
                 if getattr(args, key) is not None}
    run_demo(args.scale, output_dir=args.output_dir, plots=not args.no_plots,
             random_state=args.seed, **overrides)
    return 0


if __name__ == "__main__":
    sys.exit(main())

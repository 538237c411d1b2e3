"""Command line: ``astromorphnet demo`` (also ``python -m astromorphnet demo``)."""

import argparse
import sys

__all__ = ["main"]


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
    demo = sub.add_parser("demo", help="simulate galaxies, train a CNN, print its R² table")
    demo.add_argument("--n-galaxies", type=int, default=1000,
                      help="galaxies simulated, train + test (default: %(default)s)")
    demo.add_argument("--stamp-size", type=int, default=48,
                      help="cutout size in pixels (default: %(default)s)")
    demo.add_argument("--architecture", default="light", choices=["light", "thesis"],
                      help="network (default: %(default)s)")
    demo.add_argument("--max-epochs", type=int, default=40,
                      help="upper bound on epochs (default: %(default)s)")
    demo.add_argument("--output-dir", default="astromorphnet-demo",
                      help="where catalogs are written (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    args = parser.parse_args(argv)

    from .demo import run_demo

    run_demo(args.n_galaxies, stamp_size=args.stamp_size, architecture=args.architecture,
             max_epochs=args.max_epochs, output_dir=args.output_dir, random_state=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

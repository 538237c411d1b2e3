"""Command line: ``astromorphnet simulate|train|label|finetune|measure|demo``.

Also ``python -m astromorphnet``.  Each subcommand lives in its own module of
`astromorphnet._cli`; `main` parses and dispatches.
"""

import sys

from astropy.units import UnitsError

from ._cli import _demo, _finetune, _label, _measure, _simulate, _train
from ._cli._common import Parser, UsageError, logging_level

__all__ = ["main"]

#: Subcommand modules, in the order ``--help`` lists them (the workflow's).
_SUBCOMMANDS = (_simulate, _train, _label, _finetune, _measure, _demo)


def _parser():
    from . import __version__

    parser = Parser(
        prog="astromorphnet",
        description="Galaxy structure from image cutouts with convolutional networks: "
                    "simulate a training set, train a CNN, label real cutouts and fine-tune "
                    "on them, measure survey images into a catalog.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command",
                                parser_class=Parser)
    commands = {}
    for module in _SUBCOMMANDS:
        command = module.add_parser(sub)
        commands[command.prog.split()[-1]] = command
    return parser, commands


def main(argv=None):
    """Entry point of the ``astromorphnet`` command.

    Every argument is checked before any work (input files opened, output
    destinations tested): a bad one ends the command with one line on
    standard error and exit status 2.  Progress goes through `astropy.log`
    and Keras (a progress bar on a terminal, one plain line per epoch in a
    log file); ``-q`` keeps only warnings.  An error during the work itself
    (a file that cannot be written, a cluster that cannot be reached) ends
    it with one line and exit status 1.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    status : int
        Exit status: 0 on success, 1 on an error during the work, 130 when
        interrupted (Ctrl-C).

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
    parser, commands = _parser()
    args = parser.parse_args(argv)
    command = commands[args.command]  # its prog ("astromorphnet train") starts messages
    with logging_level(args.quiet):
        try:
            return args.run(args)
        except UsageError as error:
            command.error(_one_line(error))
        except KeyboardInterrupt:
            print(f"{command.prog}: interrupted", file=sys.stderr)
            return 130
        except (OSError, ValueError, UnitsError) as error:
            # Expected failures of the work (I/O, data); a bug still shows its traceback.
            print(f"{command.prog}: error: {_one_line(error)}", file=sys.stderr)
            return 1


def _one_line(error):
    return " ".join(str(error).split())


if __name__ == "__main__":
    sys.exit(main())

"""``astromorphnet train``: a `SersicCNNRegressor` trained on an HDF5 simulated set."""

import argparse
import os

from astropy import log

from ._common import (UsageError, add_overwrite, add_quiet, add_seed, check_output, float_in,
                      input_file, int_at_least)

__all__ = ["ARCHITECTURE_NAMES", "add_model_output", "add_parser", "add_training_options",
           "check_model_output", "chosen", "run", "saved"]

#: The estimators' named networks (`astromorphnet.models.ARCHITECTURES`,
#: spelled out: the command line starts without importing Keras).
ARCHITECTURE_NAMES = ("light", "resnet", "thesis")

#: Training losses offered on the command line (`SersicCNNRegressor`'s ``loss``).
LOSSES = ("laplace", "gaussian", "mae", "mse")


def add_parser(sub):
    """Add the ``train`` subcommand to ``sub`` (an argparse subparsers object)."""
    parser = sub.add_parser(
        "train", help="train a CNN (SersicCNNRegressor) on a simulated HDF5 set",
        description="Train a SersicCNNRegressor on an HDF5 set written by 'astromorphnet "
                    "simulate' (read from disk batch by batch), and save it for 'measure' "
                    "and 'finetune'.")
    add = parser.add_argument
    add("dataset", type=input_file, metavar="SET.h5", help="simulated set to train on")
    add_model_output(parser)
    add("--architecture", choices=ARCHITECTURE_NAMES, default=None,
        help="network: 'resnet' (small residual network, fastest), 'thesis' (the reference "
             "thesis's) or 'light' (default: SersicCNNRegressor's)")
    add("--loss", choices=LOSSES, default="laplace",
        help="'laplace' or 'gaussian' likelihood (per-galaxy errors) or a point loss "
             "(default: %(default)s)")
    add_training_options(parser, max_epochs=100, batch_size=16, validation_fraction=0.1)
    add("--patience", type=int_at_least(0), default=10, metavar="N",
        help="epochs without improvement before stopping (default: %(default)s)")
    add_seed(parser)
    add_overwrite(parser)
    add_quiet(parser)
    parser.set_defaults(run=run)
    return parser


def add_model_output(parser):
    parser.add_argument("-o", "--output", required=True, metavar="MODEL",
                        help="file to save the trained estimator to (e.g. model.pkl)")


def add_training_options(parser, *, max_epochs, batch_size, validation_fraction):
    """The options ``train`` and ``finetune`` share, with each one's defaults."""
    add = parser.add_argument
    add("--max-epochs", type=int_at_least(1), default=max_epochs, metavar="N",
        help="most training epochs (default: %(default)s)")
    add("--batch-size", type=int_at_least(1), default=batch_size, metavar="N",
        help="training batch size (default: %(default)s)")
    add("--learning-rate", type=float_in(0), default=1e-4, metavar="RATE",
        help="Adam learning rate (default: %(default)s)")
    add("--validation-fraction", type=float_in(0, 1), default=validation_fraction,
        metavar="FRACTION", help="fraction held out to keep the best epoch "
                                 "(default: %(default)s)")
    add("--augment", action=argparse.BooleanOptionalAction, default=None,
        help="show the cutouts in random flips and 90° rotations, which leave the Sérsic "
             "parameters unchanged (default: the estimator's)")


def chosen(args, *names):
    """The options among ``names`` given on the command line (not left to the estimator)."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def check_model_output(path, overwrite):
    """Refuse, before training, a destination the trained estimator cannot be saved to."""
    from ..estimators._persistence import _KERAS_SUFFIXES

    check_output(path, overwrite)
    if path.lower().endswith(_KERAS_SUFFIXES):
        raise UsageError(f"argument -o/--output: {path!r} would look like a Keras network "
                         "file; give another extension, such as .pkl")


def saved(estimator, path):
    """Save ``estimator`` to ``path``; the exit status."""
    estimator.save(path)
    log.info(f"Saved {type(estimator).__name__} to {path}")
    return 0


def run(args):
    """Train on ``args.dataset``; save to ``args.output``."""
    from ..estimators import SersicCNNRegressor
    from ..simulation import open_dataset

    check_model_output(args.output, args.overwrite)
    estimator = SersicCNNRegressor(
        loss=args.loss, max_epochs=args.max_epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, validation_fraction=args.validation_fraction,
        patience=args.patience, random_state=args.seed, verbose=0 if args.quiet else 1,
        **chosen(args, "architecture", "augment"))
    try:
        dataset = open_dataset(args.dataset)
    except (OSError, ValueError) as error:
        raise UsageError(f"argument SET.h5: {error}") from error
    with dataset:
        log.info(f"Training SersicCNNRegressor ({estimator.architecture}) on the {len(dataset)} "
                 f"galaxies of {os.path.basename(args.dataset)}")
        estimator.fit(dataset)
    return saved(estimator, args.output)

"""``astromorphnet finetune``: a saved CNN fine-tuned on labelled real cutouts."""

import os

import numpy as np
from astropy import log

from ._common import (UsageError, add_overwrite, add_quiet, add_seed, float_in, input_file,
                      int_at_least, read_cutouts)
from ._train import (add_model_output, add_training_options, check_model_output, chosen,
                     saved)

__all__ = ["add_parser", "run", "select_labelled"]


def add_parser(sub):
    """Add the ``finetune`` subcommand to ``sub`` (an argparse subparsers object)."""
    parser = sub.add_parser(
        "finetune", help="fine-tune a trained CNN on labelled real cutouts "
                         "(TransferLearningRegressor)",
        description="Fine-tune a saved estimator on real cutouts labelled by 'astromorphnet "
                    "label' (or any table with the model's target columns), and save the "
                    "result.  The labels table's 'index' column, when present, gives each "
                    "row's cutout (else row i labels cutout i); rows whose 'selected' column "
                    "is False, or with NaN labels, are left out.")
    add = parser.add_argument
    add("model", type=input_file, metavar="MODEL", help="saved estimator to start from")
    add("cutouts", type=input_file, metavar="CUTOUTS",
        help="real cutouts: a FITS cube (n, ny, nx) or an HDF5 set")
    add("labels", type=input_file, metavar="LABELS",
        help="their labels: a table file (FITS, ECSV, ...) read by astropy")
    add_model_output(parser)
    add_training_options(parser, max_epochs=15, batch_size=8, validation_fraction=0.2)
    add("--patience", type=int_at_least(0), default=None, metavar="N",
        help="stop after N epochs without improvement (default: run all epochs; the best "
             "epoch is kept either way)")
    frozen = parser.add_mutually_exclusive_group()
    frozen.add_argument("--freeze", action="store_true",
                        help="freeze the convolution blocks: only the dense head trains")
    frozen.add_argument("--train-last", type=int_at_least(0), default=None, metavar="K",
                        help="freeze all but the last K convolution blocks (and the head)")
    add("--zeropoint", type=float_in(), default=None, metavar="MAG",
        help="AB zeropoint of cutouts whose file gives none")
    add("--pixel-scale", type=float_in(0), default=None, metavar="ARCSEC",
        help="arcsec per pixel of cutouts whose file gives none")
    add_seed(parser)
    add_overwrite(parser)
    add_quiet(parser)
    parser.set_defaults(run=run)
    return parser


def select_labelled(labels, n_cutouts):
    """The cutout index of each usable row of ``labels``, and those rows.

    Raises
    ------
    UsageError
        If ``index`` values are not integers in ``[0, n_cutouts)``, without
        an ``index`` column the table does not have one row per cutout, or no
        row is selected.
    """
    if "index" in labels.colnames:
        index = np.asarray(labels["index"])
        if index.dtype.kind not in "iu":
            raise UsageError(f"argument LABELS: its 'index' column must hold integers (cutout "
                             f"numbers); got {index.dtype}")
        outside = index[(index < 0) | (index >= n_cutouts)]
        if len(outside):
            raise UsageError(f"argument LABELS: its 'index' column must hold cutout numbers "
                             f"in [0, {n_cutouts}); got {outside[0]}")
    elif len(labels) != n_cutouts:
        raise UsageError(f"argument LABELS: {len(labels)} rows for {n_cutouts} cutouts and no "
                         "'index' column saying which row labels which cutout")
    else:
        index = np.arange(n_cutouts)
    keep = np.ones(len(labels), bool)
    if "selected" in labels.colnames:
        keep = np.asarray(labels["selected"], bool)
    if not keep.any():
        raise UsageError("argument LABELS: no row to fine-tune on (none is selected)")
    return index[keep], labels[keep]


def run(args):
    """Fine-tune ``args.model`` on ``args.cutouts`` and ``args.labels``; save to ``args.output``."""
    from astropy.table import QTable
    from sklearn.utils.validation import check_is_fitted

    from ..estimators import SersicCNNRegressor, TransferLearningRegressor, load

    check_model_output(args.output, args.overwrite)
    try:
        pretrained = load(args.model)
        if not isinstance(pretrained, (SersicCNNRegressor, TransferLearningRegressor)):
            raise TypeError(f"it holds a {type(pretrained).__name__}, not a "
                            "SersicCNNRegressor or TransferLearningRegressor")
        check_is_fitted(pretrained)
    except Exception as error:  # any reason the file cannot serve, said in one line
        raise UsageError(f"argument MODEL: cannot fine-tune {args.model!r}: {error}") from error
    try:
        labels = QTable.read(args.labels)
    except Exception as error:  # astropy's readers raise many kinds
        raise UsageError(f"argument LABELS: cannot read {args.labels!r} as a table: "
                         f"{error}") from error
    missing = [name for name in pretrained.targets_ if name not in labels.colnames]
    if missing:
        raise UsageError(f"argument LABELS: no column {', '.join(map(repr, missing))}; the "
                         f"model learned {list(pretrained.targets_)}")
    trainable = "head" if args.freeze else "all" if args.train_last is None else args.train_last
    estimator = TransferLearningRegressor(
        pretrained, trainable=trainable, learning_rate=args.learning_rate,
        batch_size=args.batch_size, max_epochs=args.max_epochs, patience=args.patience,
        validation_fraction=args.validation_fraction, zeropoint=args.zeropoint,
        pixel_scale=args.pixel_scale, random_state=args.seed, verbose=0 if args.quiet else 1,
        **chosen(args, "augment"))
    stamps, dataset = read_cutouts(args.cutouts, pixel_scale=args.pixel_scale,
                                   zeropoint=args.zeropoint)
    try:
        index, rows = select_labelled(labels, len(stamps))
        log.info(f"Fine-tuning {os.path.basename(args.model)} on {len(rows)} labelled "
                 f"cutouts of {os.path.basename(args.cutouts)} (trainable: {trainable})")
        estimator.fit(stamps.take(index), rows)
    finally:
        if dataset is not None:
            dataset.close()
    return saved(estimator, args.output)

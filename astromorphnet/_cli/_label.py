"""``astromorphnet label``: Sérsic fits of cutouts, quality-cut, as fine-tuning labels."""

import os
import warnings

import numpy as np
from astropy import log

from ._common import (UsageError, add_overwrite, add_quiet, check_output, float_in, input_file,
                      int_at_least, read_cutouts)

__all__ = ["add_parser", "run"]


def add_parser(sub):
    """Add the ``label`` subcommand to ``sub`` (an argparse subparsers object)."""
    from ..simulation import PRESETS

    parser = sub.add_parser(
        "label", help="label cutouts with PSF-convolved Sérsic fits (fit_sersic) for "
                      "'finetune'",
        description="Fit a PSF-convolved single-Sérsic profile to each cutout and write the "
                    "fits that pass the quality cuts (fit_flag and flag 0, chi2_nu at most "
                    "--max-chi2, relative errors at most --max-rel-error) as a labels table, "
                    "with an 'index' column (the cutout's number) and a 'selected' column; "
                    "'finetune' reads it.  The Python equivalent is "
                    "astromorphnet.fitting.label_with_fit.")
    add = parser.add_argument
    add("cutouts", type=input_file, metavar="CUTOUTS",
        help="cutouts: a FITS cube (n, ny, nx) or an HDF5 set")
    add("-o", "--output", required=True, metavar="LABELS",
        help="labels table to write; the extension sets the format (.fits, .ecsv, .parquet, "
             ".csv)")
    psf = parser.add_mutually_exclusive_group(required=True)
    psf.add_argument("--survey", choices=sorted(PRESETS), metavar="PRESET",
                     help="take the PSF (and the default pixel scale and zeropoint) from a "
                          f"survey preset: {', '.join(sorted(PRESETS))}")
    psf.add_argument("--psf", type=input_file, metavar="FILE",
                     help="FITS image of the PSF, sampled at the cutouts' pixel scale")
    add("--max-chi2", type=float_in(0), default=None, metavar="CHI2",
        help="also cut fits whose reduced chi-square exceeds CHI2 (default: only the fits' "
             "own BAD_CHI2 flag)")
    add("--max-rel-error", type=float_in(0), default=None, metavar="FRACTION",
        help="also cut fits whose relative error on the flux, r_eff, sersic_n or the axis "
             "ratio exceeds FRACTION (e.g. 0.2), or is undefined")
    add("--keep-flagged", action="store_true",
        help="write a row for every cutout, those failing the cuts with selected=False and "
             "NaN parameters (their fit_flag, chi2_nu and sn say why)")
    add("--fit-sky", action="store_true", help="also fit a constant background")
    add("--zeropoint", type=float_in(), default=None, metavar="MAG",
        help="AB zeropoint of cutouts whose file gives none")
    add("--pixel-scale", type=float_in(0), default=None, metavar="ARCSEC",
        help="arcsec per pixel of cutouts whose file gives none")
    add("--jobs", type=int_at_least(1), default=1, metavar="N",
        help="worker processes (default: %(default)s)")
    add_overwrite(parser)
    add_quiet(parser)
    parser.set_defaults(run=run)
    return parser


def run(args):
    """Fit ``args.cutouts``; write the labels to ``args.output``."""
    from ..catalog import catalog_format, write_catalog
    from ..catalog._targets import require_zeropoint
    from ..fitting import label_with_fit
    from ..fitting._setup import check_psf
    from ..simulation import SurveyConfig

    try:
        catalog_format(args.output)
    except ValueError as error:
        raise UsageError(f"argument -o/--output: {error}") from error
    check_output(args.output, args.overwrite)
    survey = None if args.survey is None else SurveyConfig.from_preset(args.survey)
    try:
        psf = survey or _read_psf(args.psf)
        with warnings.catch_warnings():
            # Errors only: fit_sersic warns about the PSF when it runs.
            warnings.simplefilter("ignore")
            check_psf(psf)
    except (OSError, ValueError, TypeError) as error:
        option = "--psf" if survey is None else "--survey"
        raise UsageError(f"argument {option}: {error}") from error
    stamps, dataset = read_cutouts(args.cutouts, pixel_scale=args.pixel_scale,
                                   zeropoint=args.zeropoint, survey=survey)
    try:
        try:
            require_zeropoint(stamps.zeropoint)
        except ValueError as error:
            raise UsageError(f"{error} (--zeropoint)") from error
        log.info(f"Fitting {len(stamps)} cutouts of {os.path.basename(args.cutouts)}")
        # label_with_fit warns (through astropy's log) when few fits pass.
        fitted = label_with_fit(stamps, psf, max_chi2=args.max_chi2,
                                max_rel_error=args.max_rel_error, fit_sky=args.fit_sky,
                                n_jobs=args.jobs, verbose=not args.quiet)
    finally:
        if dataset is not None:
            dataset.close()
    fitted.add_column(np.arange(len(fitted)), name="index", index=0)
    fitted.meta["cutouts"] = os.path.abspath(args.cutouts)
    log.info(f"{fitted.meta['n_selected']} of {len(fitted)} fits pass the cuts "
             f"({fitted.meta['selection']})")
    write_catalog(fitted if args.keep_flagged else fitted[fitted["selected"]], args.output,
                  overwrite=args.overwrite)
    log.info(f"Wrote {args.output}")
    return 0


def _read_psf(path):
    from astropy.io import fits

    psf = fits.getdata(path)
    if psf is None:
        raise ValueError(f"{path!r} holds no image")
    return np.asarray(psf, float)


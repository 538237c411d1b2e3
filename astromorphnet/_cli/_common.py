"""What the subcommands share: one-line argument errors, argument types, input files, logging."""

import argparse
import contextlib
import os

from astropy import log

from ..demo import MAX_SEED

__all__ = ["Parser", "UsageError", "add_overwrite", "add_quiet", "add_seed", "check_output",
           "float_in", "input_file", "int_at_least", "logging_level", "read_cutouts"]

#: Extensions read as HDF5 cutout sets.
HDF5_EXTENSIONS = (".h5", ".hdf5", ".hdf")


class UsageError(ValueError):
    """An argument found bad once its file was opened: exit status 2, like a parse error."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors fit on one line (no usage block)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def int_at_least(least, most=None):
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


def float_in(low=None, high=None):
    """An argparse ``type``: a finite number in the open interval ``(low, high)``."""
    accepted = f"a number in ({'-inf' if low is None else low}, {'inf' if high is None else high})"

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {accepted}; got {text!r}") from None
        if (value != value or abs(value) == float("inf") or (low is not None and value <= low)
                or (high is not None and value >= high)):
            raise argparse.ArgumentTypeError(f"expected {accepted}; got {text!r}")
        return value

    return parse


def input_file(text):
    """An argparse ``type``: the path of an existing file."""
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; expected a file")
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"no file {text!r}")
    return text


def add_quiet(parser):
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="only warnings and errors on the terminal (no progress)")


def add_seed(parser):
    parser.add_argument("--seed", type=int_at_least(0, MAX_SEED), default=0,
                        help="random seed (default: %(default)s)")


def add_overwrite(parser):
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the output file if it exists (once the new one is "
                             "complete)")


def check_output(path, overwrite):
    """Refuse, before any work, an output file that cannot or must not be written.

    Raises
    ------
    UsageError
        If ``path`` is a folder, its folder does not exist, or it exists and
        ``overwrite`` is False.
    """
    if os.path.isdir(path):
        raise UsageError(f"argument -o/--output: {path!r} is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"argument -o/--output: folder {folder!r} does not exist")
    if os.path.exists(path) and not overwrite:
        raise UsageError(f"argument -o/--output: {path!r} exists; add --overwrite to replace it")


@contextlib.contextmanager
def logging_level(quiet):
    """astropy's log at WARNING for the command's duration when ``quiet``.

    Otherwise its level is left as configured (INFO by default: progress shows).
    """
    previous = log.level
    if quiet:
        log.setLevel("WARNING")
    try:
        yield
    finally:
        log.setLevel(previous)


def read_cutouts(path, *, pixel_scale=None, zeropoint=None, survey=None):
    """Cutouts from a file, as the estimators and `fit_sersic` read them.

    Parameters
    ----------
    path : str
        An HDF5 simulated set (``.h5``, ``.hdf5``, ``.hdf``; read lazily:
        the caller closes it), or a FITS file whose first data HDU holds a
        cube ``(n, ny, nx)`` or one cutout; its ``MASK`` and ``UNCERT``
        extensions, ``BUNIT`` and zeropoint keywords (``MAGZERO``,
        ``PHOTZP``) are read as `~astropy.nddata.CCDData.read` reads them.
    pixel_scale, zeropoint : float, optional
        For cutouts whose FITS file gives none; they override an HDF5 set's.
    survey : `~astromorphnet.simulation.SurveyConfig`, optional
        Pixel scale and zeropoint for FITS cutouts, after those of the file
        and the options (an HDF5 set has its own).

    Returns
    -------
    stamps : `astromorphnet._input.Stamps`
        The validated cutouts.
    dataset : `~astromorphnet.simulation.SimulatedDataset` or None
        The open HDF5 set, to close once the cutouts are read.

    Raises
    ------
    UsageError
        If the file cannot be read as cutouts.
    """
    from .._input import as_stamps

    dataset = None
    try:
        if path.lower().endswith(HDF5_EXTENSIONS):
            from ..simulation import open_dataset

            dataset = open_dataset(path)
            source, fallback = dataset.images, dataset.survey
        else:
            source = _read_fits_cutouts(path)
            fallback = {} if survey is None else {"pixel_scale": survey.pixel_scale,
                                                  "zeropoint": survey.zeropoint}
        pixel_scale = fallback.get("pixel_scale") if pixel_scale is None else pixel_scale
        zeropoint = fallback.get("zeropoint") if zeropoint is None else zeropoint
        return as_stamps(source, pixel_scale=pixel_scale, zeropoint=zeropoint), dataset
    except (OSError, ValueError, TypeError) as error:
        if dataset is not None:
            dataset.close()
        raise UsageError(f"cannot read cutouts from {path!r}: {error}") from error


def _read_fits_cutouts(path):
    import astropy.units as u
    from astropy.io import fits
    from astropy.nddata import CCDData

    with fits.open(path) as hdus:
        index = next((i for i, hdu in enumerate(hdus) if hdu.data is not None
                      and hdu.is_image and hdu.data.ndim in (2, 3)), None)
        if index is None:
            raise ValueError("no HDU holds a cube (n, ny, nx) or a 2-D cutout")
        unit = None if "BUNIT" in hdus[index].header else u.dimensionless_unscaled
    cutouts = CCDData.read(path, hdu=index, unit=unit)
    if cutouts.ndim == 2:
        return [cutouts]  # one cutout, its WCS giving the pixel scale
    # A cube's 3-D WCS does not give the 2-D cutouts' pixel scale.
    cutouts.wcs = None
    return cutouts

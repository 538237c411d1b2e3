"""Per-galaxy quality bit flags of the output catalogs."""

import enum

__all__ = ["SersicFlag", "MASKED_FRACTION_LIMIT"]

#: A cutout whose masked fraction exceeds this is flagged ``MASKED``.
MASKED_FRACTION_LIMIT = 0.25


class SersicFlag(enum.IntFlag):
    """Bit flags of the ``flag`` column of a Sérsic catalog.

    A flag of 0 means the measurement raised no warning.  Flags combine
    bitwise, e.g. ``flag & SersicFlag.PADDED`` tests one condition.

    Attributes
    ----------
    PADDED : int
        The cutout was smaller than the network's input in at least one
        axis (or hit an image edge) and was padded with masked pixels.
    MASKED : int
        More than `MASKED_FRACTION_LIMIT` of the cutout's pixels were
        masked (user mask, NaN/inf pixels, zero-weight pixels, padding).
    OUT_OF_RANGE : int
        At least one predicted parameter lies outside the range of the
        labels the network was trained on: an extrapolation.
    CROPPED : int
        The cutout was larger than the network's input in at least one axis
        and was centre-cropped: light beyond the crop (the wings of a large
        galaxy) was not seen.

    Examples
    --------
    >>> from astromorphnet.catalog import SersicFlag
    >>> flag = SersicFlag.PADDED | SersicFlag.MASKED
    >>> int(flag)
    3
    >>> bool(flag & SersicFlag.OUT_OF_RANGE)
    False
    """

    PADDED = 1
    MASKED = 2
    OUT_OF_RANGE = 4
    CROPPED = 8

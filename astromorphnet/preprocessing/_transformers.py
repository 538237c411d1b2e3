"""scikit-learn transformers for cutouts, usable as `~sklearn.pipeline.Pipeline` steps.

Both return one 3-D `~astropy.nddata.NDData` (data, mask, uncertainty, unit
and per-cutout ``meta['flag']``, ``meta['pixel_scale']``,
``meta['zeropoint']``), which every astromorphnet estimator reads.
"""

import warnings

import numpy as np
from astropy.nddata import NDData, StdDevUncertainty
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._input import as_stamps

__all__ = ["CutoutCropper", "ImageNormalizer"]

#: Cutouts sampled to estimate the background noise.
_NOISE_SAMPLE = 2000


def _to_nddata(data, batch, stamps, unit):
    uncertainty = None if batch.std is None else StdDevUncertainty(batch.std)
    meta = {"flag": batch.flag, "pixel_scale": stamps.pixel_scale,
            "zeropoint": stamps.zeropoint}
    return NDData(data, mask=batch.mask, uncertainty=uncertainty, unit=unit, meta=meta)


def _single_shape(stamps):
    shapes = stamps.shapes
    if len(shapes) > 1:
        raise ValueError(
            f"the cutouts have {len(shapes)} different shapes ({shapes[:3]}...); "
            "put a CutoutCropper(size=...) step first")
    return shapes[0]


class CutoutCropper(TransformerMixin, BaseEstimator):
    """Centre-crop or pad cutouts to one size, masking and flagging padding.

    Cutouts larger than ``size`` are cropped about their centre pixel;
    smaller ones (or ones cut at an image edge) are padded with masked pixels
    and flagged `~astromorphnet.catalog.SersicFlag.PADDED`.  Stateless.

    Parameters
    ----------
    size : int or tuple of int
        Output ``(ny, nx)``; an int gives a square.

    Raises
    ------
    ValueError
        From `fit` and `transform`, if ``size`` is not a positive int or a
        pair of them.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.nddata import NDData
    >>> from astromorphnet.preprocessing import CutoutCropper
    >>> cutouts = [NDData(np.ones((40, 40))), NDData(np.ones((20, 30)))]
    >>> stack = CutoutCropper(size=32).fit_transform(cutouts)
    >>> stack.data.shape
    (2, 32, 32)
    >>> stack.meta["flag"].tolist()  # the first was cropped, the second padded (41% masked)
    [8, 3]
    """

    def __init__(self, size=64):
        self.size = size

    def fit(self, X, y=None):
        """Check ``size`` and the cutouts; nothing is learned.

        Parameters
        ----------
        X : cutouts
            Any form the astromorphnet estimators accept.
        y : None
            Ignored; present for the scikit-learn API.

        Returns
        -------
        self : CutoutCropper
            The transformer itself.

        Raises
        ------
        ValueError
            If ``size`` is not a positive int or a pair of them, or ``X`` is
            empty or malformed.

        Examples
        --------
        >>> import numpy as np
        >>> from astromorphnet.preprocessing import CutoutCropper
        >>> CutoutCropper(size=(8, 16)).fit(np.ones((2, 10, 10)))
        CutoutCropper(size=(8, 16))
        """
        self._shape()
        as_stamps(X)  # validation only: nothing to learn
        return self

    def _shape(self):
        shape = (self.size, self.size) if np.isscalar(self.size) else tuple(self.size)
        if len(shape) != 2 or not all(int(s) == s and s > 0 for s in shape):
            raise ValueError(f"size must be a positive int or (ny, nx); got {self.size!r}")
        return tuple(int(s) for s in shape)

    def transform(self, X):
        """Crop/pad every cutout to ``size``.

        Parameters
        ----------
        X : cutouts
            Any form the astromorphnet estimators accept.

        Returns
        -------
        stack : `~astropy.nddata.NDData`
            3-D data ``(n, ny, nx)`` with mask, uncertainty, unit and
            per-cutout meta.

        Raises
        ------
        ValueError
            If ``size`` is not a positive int or a pair of them, or ``X`` is
            empty or malformed.

        Examples
        --------
        >>> import numpy as np
        >>> from astromorphnet.preprocessing import CutoutCropper
        >>> stack = CutoutCropper(size=4).transform(np.ones((1, 2, 2)))
        >>> stack.mask[0].astype(int)
        array([[1, 1, 1, 1],
               [1, 0, 0, 1],
               [1, 0, 0, 1],
               [1, 1, 1, 1]])
        """
        stamps = as_stamps(X)
        batch = stamps.read(0, len(stamps), self._shape())
        return _to_nddata(batch.data, batch, stamps, stamps.unit)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.allow_nan = True  # NaN pixels become masked
        tags.requires_fit = False
        return tags


class ImageNormalizer(TransformerMixin, BaseEstimator):
    """Stretch pixel values against the training set's background noise.

    `fit` learns one noise level ``scale_`` (the median over the training
    cutouts of each one's uncertainty, or of the MAD standard deviation of
    its unmasked pixels when no uncertainty is given); `transform` maps
    pixels to ``arcsinh(x / (softening * scale_))`` (``stretch="asinh"``) or
    ``x / scale_`` (``"linear"``).  One scale for all cutouts keeps total
    flux, hence magnitude, readable by the network.  Masked pixels become 0.
    Pixels are assumed background-subtracted.

    Parameters
    ----------
    stretch : {"asinh", "linear"}
        The stretch.
    softening : float
        Where the asinh stretch turns from linear to logarithmic, in units of
        the noise.

    Attributes
    ----------
    scale_ : float
        Background noise level in the training pixels' unit.
    unit_ : `~astropy.units.Unit` or None
        Pixel unit at fit time.

    Raises
    ------
    ValueError
        From `fit`, if ``stretch`` is unknown or ``softening`` is not
        positive.

    Warns
    -----
    UserWarning
        From `fit`, if the cutouts show no background noise (``scale_`` is
        then 1).

    Examples
    --------
    >>> import numpy as np
    >>> from astromorphnet.preprocessing import ImageNormalizer
    >>> rng = np.random.default_rng(0)
    >>> images = rng.normal(0.0, 2.0, size=(10, 32, 32))
    >>> norm = ImageNormalizer().fit(images)
    >>> round(float(norm.scale_), 1)
    2.0
    >>> norm.transform(images).data.shape
    (10, 32, 32)
    """

    def __init__(self, stretch="asinh", softening=3.0):
        self.stretch = stretch
        self.softening = softening

    def fit(self, X, y=None, shape=None):
        """Learn the background noise level.

        Parameters
        ----------
        X : cutouts
            Any form the astromorphnet estimators accept.
        y : None
            Ignored; present for the scikit-learn API.
        shape : tuple of int, optional
            Crop/pad cutouts to this shape first (default: their own,
            which must be common).

        Returns
        -------
        self : ImageNormalizer
            The fitted transformer.

        Raises
        ------
        ValueError
            If ``stretch`` is unknown, ``softening`` is not positive, ``X``
            is empty or malformed, or the cutouts differ in shape and no
            ``shape`` is given.

        Warns
        -----
        UserWarning
            If the cutouts show no background noise: ``scale_`` is then 1.

        Examples
        --------
        >>> import numpy as np
        >>> from astromorphnet.preprocessing import ImageNormalizer
        >>> images = np.random.default_rng(0).normal(0.0, 0.5, size=(4, 16, 16))
        >>> round(ImageNormalizer().fit(images).scale_, 1)
        0.5
        """
        if self.stretch not in ("asinh", "linear"):
            raise ValueError(f"stretch must be 'asinh' or 'linear'; got {self.stretch!r}")
        if not self.softening > 0:
            raise ValueError(f"softening must be positive; got {self.softening!r}")
        stamps = as_stamps(X)
        shape = _single_shape(stamps) if shape is None else shape
        step = max(1, len(stamps) // _NOISE_SAMPLE)
        noise = np.concatenate([stamps.noise(i, i + 1, shape)
                                for i in range(0, len(stamps), step)])
        scale = np.nanmedian(noise) if np.isfinite(noise).any() else np.nan
        if not scale > 0:
            warnings.warn("the cutouts show no background noise; normalising with "
                          "scale_=1 (noiseless simulations?)", UserWarning, stacklevel=2)
            scale = 1.0
        self.scale_ = float(scale)
        self.unit_ = stamps.unit
        return self

    def apply(self, data):
        """Apply the fitted stretch to a pixel array (already in ``unit_``).

        Parameters
        ----------
        data : `~numpy.ndarray`
            Pixels; masked ones should be 0.

        Returns
        -------
        stretched : `~numpy.ndarray`
            The stretched pixels, float32, of the shape of ``data``.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the normaliser is not fitted.

        Examples
        --------
        >>> import numpy as np
        >>> from astromorphnet.preprocessing import ImageNormalizer
        >>> rng = np.random.default_rng(0)
        >>> norm = ImageNormalizer(stretch="linear").fit(rng.normal(0.0, 2.0, (4, 16, 16)))
        >>> image = rng.normal(0.0, 2.0, (16, 16))
        >>> bool(np.allclose(norm.apply(image), image / norm.scale_))
        True
        """
        check_is_fitted(self)
        if self.stretch == "linear":
            return (data / self.scale_).astype(np.float32, copy=False)
        return np.arcsinh(data / (self.softening * self.scale_)).astype(np.float32, copy=False)

    def transform(self, X):
        """Stretch the cutouts.

        Parameters
        ----------
        X : cutouts
            Any form the astromorphnet estimators accept, in a unit convertible
            to the one seen at fit time.

        Returns
        -------
        stack : `~astropy.nddata.NDData`
            3-D dimensionless data with mask and per-cutout meta.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the normaliser is not fitted.
        ValueError
            If ``X`` is empty or malformed, or its cutouts differ in shape.
        astropy.units.UnitsError
            If the pixel unit cannot be converted to the fit-time one.

        Examples
        --------
        >>> import numpy as np
        >>> from astromorphnet.preprocessing import ImageNormalizer
        >>> images = np.random.default_rng(0).normal(0.0, 1.0, size=(4, 16, 16))
        >>> stack = ImageNormalizer().fit(images).transform(images)
        >>> stack.data.shape, stack.data.dtype, stack.unit
        ((4, 16, 16), dtype('float32'), None)
        """
        check_is_fitted(self)
        stamps = as_stamps(X).convert_to(self.unit_)
        batch = stamps.read(0, len(stamps), _single_shape(stamps))
        # The uncertainty does not survive a non-linear stretch.
        return _to_nddata(self.apply(batch.data), batch._replace(std=None), stamps, None)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.allow_nan = True
        return tags

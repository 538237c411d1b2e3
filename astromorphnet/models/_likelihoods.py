"""Heteroscedastic regression heads: negative log-likelihood losses.

A network trained with one of these losses predicts, for every target, a
location and the log of a scale: its outputs are ``2 · n_targets`` wide
(all locations, then all log-scales), or ``n_members · 2 · n_targets`` for
an ensemble (`build_ensemble`), member after member.  The location is the
point estimate; the scale is the per-galaxy (aleatoric) uncertainty.
"""

import keras
from keras import ops

__all__ = ["LIKELIHOODS", "GaussianNLL", "LaplaceNLL", "split_outputs"]

#: Log-scales are clipped here in the loss: a scale of e^±12 standardised
#: units is already meaningless, and the clip keeps exp() finite early on.
_LOG_SCALE_LIMIT = 12.0


def split_outputs(y_pred, n_targets):
    """Split a likelihood head's outputs into locations and log-scales.

    Parameters
    ----------
    y_pred : tensor or array
        Network outputs, shape ``(n, n_members · 2 · n_targets)``.
    n_targets : int
        Number of regression targets.

    Returns
    -------
    loc, log_scale : tensor or array
        Each of shape ``(n, n_members, n_targets)``.

    Examples
    --------
    >>> import numpy as np
    >>> from keras import ops
    >>> from astromorphnet.models import split_outputs
    >>> loc, log_scale = split_outputs(np.arange(8.0)[np.newaxis], 2)
    >>> ops.convert_to_numpy(loc).tolist(), ops.convert_to_numpy(log_scale).tolist()
    ([[[0.0, 1.0], [4.0, 5.0]]], [[[2.0, 3.0], [6.0, 7.0]]])
    """
    members = ops.reshape(y_pred, (-1, y_pred.shape[-1] // (2 * n_targets), 2, n_targets))
    return members[:, :, 0, :], members[:, :, 1, :]


class _NegativeLogLikelihood(keras.losses.Loss):
    """Mean negative log-likelihood over targets and ensemble members.

    Subclasses give ``family``, ``_nll(standardised residual, log_scale)``
    (up to a constant) and ``_power``, the power of the scale in the
    gradient of ``_nll`` with respect to the location; each member of an
    ensemble is trained on its own likelihood, as deep ensembles are.

    Each galaxy's term is weighted by ``stop_gradient(scale ** (beta ·
    _power))`` (β-NLL, Seitzer et al. 2022).  A plain NLL (``beta=0``) divides
    the location's gradient by the scale, so the network gives up on the
    galaxies it finds hard -- measured in our demo as a loss of r_eff
    accuracy after fine-tuning.  ``beta=1`` restores the gradient of the
    point loss (MAE for Laplace, MSE for Gaussian) for the location; the
    scale's optimum is unchanged for every ``beta``.
    """

    family = None
    _power = None

    def __init__(self, beta=1.0, name=None, reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name or f"{self.family}_nll", reduction=reduction, dtype=dtype)
        self.beta = float(beta)

    def get_config(self):
        """The loss's configuration, ``beta`` included, for Keras saving.

        Returns
        -------
        config : dict
            Keyword arguments that rebuild the loss.

        Examples
        --------
        >>> from astromorphnet.models import LaplaceNLL
        >>> LaplaceNLL(beta=0.5).get_config()["beta"]
        0.5
        """
        return {**super().get_config(), "beta": self.beta}

    def call(self, y_true, y_pred):
        """Per-galaxy negative log-likelihood (Keras reduces it over the batch).

        Parameters
        ----------
        y_true : tensor
            Standardised labels, shape ``(n, n_targets)``.
        y_pred : tensor
            Network outputs, shape ``(n, n_members · 2 · n_targets)``.

        Returns
        -------
        loss : tensor
            Shape ``(n,)``: mean over targets and members.

        Examples
        --------
        >>> import numpy as np
        >>> from keras import ops
        >>> from astromorphnet.models import LaplaceNLL
        >>> y_pred = np.zeros((2, 2), np.float32)
        >>> ops.convert_to_numpy(LaplaceNLL().call(np.array([[1.0], [-2.0]]), y_pred))
        array([1., 2.], dtype=float32)
        """
        y_true = ops.cast(y_true, y_pred.dtype)
        loc, log_scale = split_outputs(y_pred, y_true.shape[-1])
        log_scale = ops.clip(log_scale, -_LOG_SCALE_LIMIT, _LOG_SCALE_LIMIT)
        residual = (y_true[:, None, :] - loc) * ops.exp(-log_scale)
        nll = self._nll(residual, log_scale)
        if self.beta:
            nll = nll * ops.stop_gradient(ops.exp(self.beta * self._power * log_scale))
        return ops.mean(nll, axis=(1, 2))


@keras.saving.register_keras_serializable(package="astromorphnet")
class LaplaceNLL(_NegativeLogLikelihood):
    """Laplace negative log-likelihood: ``|y - μ| / b + log b``.

    The heteroscedastic generalisation of the mean absolute error (the
    reference thesis's loss): the location is a median, robust to the odd
    mislabelled galaxy, and ``b`` (scale) is learned per galaxy.

    Parameters
    ----------
    beta : float, default=1.0
        β-NLL weight exponent: 1 gives the location the gradient of the mean
        absolute error, 0 the plain likelihood (see the module notes).
    name : str, optional
        Loss name (default ``"laplace_nll"``).
    reduction : str, default="sum_over_batch_size"
        Keras's reduction over the batch.
    dtype : str, optional
        Keras's loss dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from astromorphnet.models import LaplaceNLL
    >>> y_pred = np.array([[0.0, np.log(2.0)]], np.float32)  # μ = 0, b = 2
    >>> y_true = np.array([[1.0]], np.float32)
    >>> round(float(LaplaceNLL(beta=0)(y_true, y_pred)), 4)  # |1 - 0| / 2 + log 2
    1.1931
    >>> round(float(LaplaceNLL()(y_true, y_pred)), 4)  # weighted by b = 2
    2.3863
    """

    family = "laplace"
    _power = 1

    def _nll(self, residual, log_scale):
        return ops.abs(residual) + log_scale


@keras.saving.register_keras_serializable(package="astromorphnet")
class GaussianNLL(_NegativeLogLikelihood):
    """Gaussian negative log-likelihood: ``(y - μ)² / 2σ² + log σ``.

    Parameters
    ----------
    beta : float, default=1.0
        β-NLL weight exponent: 1 gives the location the gradient of the mean
        squared error, 0 the plain likelihood.
    name : str, optional
        Loss name (default ``"gaussian_nll"``).
    reduction : str, default="sum_over_batch_size"
        Keras's reduction over the batch.
    dtype : str, optional
        Keras's loss dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from astromorphnet.models import GaussianNLL
    >>> y_pred = np.array([[0.0, 0.0]], np.float32)  # μ = 0, σ = 1
    >>> float(GaussianNLL()(np.array([[2.0]], np.float32), y_pred))
    2.0
    """

    family = "gaussian"
    _power = 2

    def _nll(self, residual, log_scale):
        return 0.5 * ops.square(residual) + log_scale


#: Likelihood losses by name, accepted by the estimators' ``loss`` parameter;
#: a new one is a subclass with ``family`` and ``_nll`` (and the matching
#: quantile in `astromorphnet.uncertainty`).
LIKELIHOODS = {cls.family: cls for cls in (LaplaceNLL, GaussianNLL)}

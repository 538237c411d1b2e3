"""Domain-adversarial networks (DANN, Ganin et al. 2016): gradient reversal, two-headed model."""

import keras
import numpy as np
from keras import layers, ops

__all__ = ["GradientReversal", "ReversalSchedule", "build_dann", "feature_layer"]


@keras.saving.register_keras_serializable(package="astromorphnet")
class GradientReversal(layers.Layer):
    """Identity in the forward pass; multiplies the gradient by ``-strength``.

    Placed between a shared feature extractor and a domain classifier, it
    makes the extractor *maximise* the classifier's loss while the classifier
    minimises it, so the features become domain-invariant.  ``strength`` is a
    non-trainable weight, so a schedule (`ReversalSchedule`) can change it
    during training without recompiling.

    Parameters
    ----------
    strength : float, default=1.0
        Initial reversal strength λ.
    **kwargs
        Passed to `keras.layers.Layer` (e.g. ``name``).

    Examples
    --------
    >>> import numpy as np
    >>> import tensorflow as tf
    >>> from astromorphnet.models import GradientReversal
    >>> x = tf.Variable(np.ones((1, 3), np.float32))
    >>> with tf.GradientTape() as tape:
    ...     y = tf.reduce_sum(GradientReversal(0.5)(x))
    >>> tape.gradient(y, x).numpy()
    array([[-0.5, -0.5, -0.5]], dtype=float32)
    """

    def __init__(self, strength=1.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_strength = float(strength)

    def build(self, input_shape):
        """Create the non-trainable ``strength`` weight.

        Parameters
        ----------
        input_shape : tuple of int or None
            Shape of the input (unused: the weight is a scalar).

        Examples
        --------
        >>> from astromorphnet.models import GradientReversal
        >>> layer = GradientReversal(0.5)
        >>> layer.build((None, 3))
        >>> float(layer.strength.numpy())
        0.5
        """
        self.strength = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.initial_strength),
            trainable=False, name="strength")

    def call(self, x):
        """The forward pass: ``x`` unchanged, with a reversed gradient.

        Parameters
        ----------
        x : tensor
            The features.

        Returns
        -------
        y : tensor
            Equal to ``x``; its gradient with respect to ``x`` is ``-strength``.

        Examples
        --------
        >>> import numpy as np
        >>> from keras import ops
        >>> from astromorphnet.models import GradientReversal
        >>> ops.convert_to_numpy(GradientReversal()(np.full((1, 2), 3.0, np.float32)))
        array([[3., 3.]], dtype=float32)
        """
        lam = ops.cast(self.strength, x.dtype)
        frozen = ops.stop_gradient(x)
        # Forward: exactly x (frozen - x is exactly 0).  Backward: d/dx = -λ.
        return frozen + lam * (frozen - x)

    def compute_output_shape(self, input_shape):
        """The output shape, that of the input.

        Parameters
        ----------
        input_shape : tuple of int or None
            Shape of the input.

        Returns
        -------
        output_shape : tuple of int or None
            ``input_shape``.

        Examples
        --------
        >>> from astromorphnet.models import GradientReversal
        >>> GradientReversal().compute_output_shape((None, 3))
        (None, 3)
        """
        return input_shape

    def get_config(self):
        """The layer's configuration, for Keras serialisation.

        Returns
        -------
        config : dict
            Keras's layer configuration plus the initial ``strength``.

        Examples
        --------
        >>> from astromorphnet.models import GradientReversal
        >>> GradientReversal(0.5).get_config()["strength"]
        0.5
        """
        return {**super().get_config(), "strength": self.initial_strength}


class ReversalSchedule(keras.callbacks.Callback):
    """DANN's warm-up of the reversal strength, updated every batch.

    ``λ(p) = strength · (2 / (1 + exp(-gamma · p)) - 1)`` with ``p`` the
    fraction of ``warmup_steps`` done (capped at 1): λ starts at 0, while the
    domain classifier's signal is still noise, and reaches ``strength``.

    Parameters
    ----------
    layer : GradientReversal
        The layer to drive.
    strength : float
        Final strength.
    warmup_steps : int
        Training steps over which λ rises; 0 keeps λ constant.
    gamma : float, default=10
        Steepness (DANN's value).

    Examples
    --------
    >>> from astromorphnet.models import GradientReversal, ReversalSchedule
    >>> schedule = ReversalSchedule(GradientReversal(), strength=1.0, warmup_steps=100)
    >>> [round(float(schedule.value(step)), 3) for step in (0, 10, 100, 1000)]
    [0.0, 0.462, 1.0, 1.0]
    """

    def __init__(self, layer, strength, warmup_steps, gamma=10.0):
        super().__init__()
        self.layer, self.strength = layer, float(strength)
        self.warmup_steps, self.gamma = int(warmup_steps), float(gamma)
        self.step = 0

    def value(self, step):
        """The reversal strength λ after ``step`` training steps.

        Parameters
        ----------
        step : int
            Training steps (batches) done.

        Returns
        -------
        strength : float
            The reversal strength λ at that step.

        Examples
        --------
        >>> from astromorphnet.models import GradientReversal, ReversalSchedule
        >>> schedule = ReversalSchedule(GradientReversal(), strength=2.0, warmup_steps=0)
        >>> schedule.value(0)
        2.0
        """
        if self.warmup_steps <= 0:
            return self.strength
        p = min(step / self.warmup_steps, 1.0)
        return self.strength * (2.0 / (1.0 + np.exp(-self.gamma * p)) - 1.0)

    def on_train_batch_begin(self, batch, logs=None):
        """Set λ for the coming batch (Keras calls this).

        Parameters
        ----------
        batch : int
            Index of the batch within the epoch (unused: steps are counted
            over the whole training).
        logs : dict, optional
            Keras's logs (unused).

        Examples
        --------
        >>> from astromorphnet.models import GradientReversal, ReversalSchedule
        >>> layer = GradientReversal()
        >>> layer.build(None)
        >>> schedule = ReversalSchedule(layer, strength=1.0, warmup_steps=10)
        >>> schedule.on_train_batch_begin(0)
        >>> float(layer.strength.numpy()), schedule.step
        (0.0, 1)
        """
        self.layer.strength.assign(self.value(self.step))
        self.step += 1

    def on_train_end(self, logs=None):
        """Leave the layer at the final ``strength`` (Keras calls this).

        Parameters
        ----------
        logs : dict, optional
            Keras's logs (unused).

        Examples
        --------
        >>> from astromorphnet.models import GradientReversal, ReversalSchedule
        >>> layer = GradientReversal()
        >>> layer.build(None)
        >>> ReversalSchedule(layer, strength=0.7, warmup_steps=100).on_train_end()
        >>> round(float(layer.strength.numpy()), 3)
        0.7
        """
        self.layer.strength.assign(self.strength)


def feature_layer(model):
    """The layer whose output is the shared feature vector (named ``"features"``).

    Domain adaptation and head-only fine-tuning split a network there: the
    layers up to it extract features, the ones after it are the head.

    Parameters
    ----------
    model : `keras.Model`
        A network built by a builder such as `build_light_cnn`.

    Returns
    -------
    layer : `keras.layers.Layer`
        The layer named ``"features"``.

    Raises
    ------
    ValueError
        If ``model`` has no layer named ``"features"``.

    Examples
    --------
    >>> from astromorphnet.models import build_light_cnn, feature_layer
    >>> feature_layer(build_light_cnn((32, 32, 1))).name
    'features'
    """
    try:
        return model.get_layer("features")
    except ValueError:
        raise ValueError(
            f"the network {model.name!r} has no layer named 'features': a builder used for "
            "domain adaptation or head-only fine-tuning must name the layer that ends "
            "the feature extractor (e.g. layers.Flatten(name='features'))") from None


def build_dann(regressor, *, domain_units=(128, 64), strength=1.0):
    """Add a domain classifier behind gradient reversal to a regression network.

    The reference thesis's Fig. 5.1: the regressor's layers up to
    ``"features"`` are the shared extractor, its remaining layers the
    regression head; the domain head (dense ``domain_units``, ReLU, one
    sigmoid output: probability of the target domain) reads the features
    through a `GradientReversal` layer.

    Parameters
    ----------
    regressor : `keras.Model`
        A functional regression network with a ``"features"`` layer, e.g.
        from `build_thesis_cnn` or `build_light_cnn`.
    domain_units : tuple of int, default=(128, 64)
        Hidden layers of the domain classifier.
    strength : float, default=1.0
        Initial gradient-reversal strength.

    Returns
    -------
    model : `keras.Model`
        Outputs ``{"sersic": regression, "domain": probability}``; layers
        are shared with ``regressor``.

    Raises
    ------
    ValueError
        If ``regressor`` has no layer named ``"features"``.

    Examples
    --------
    >>> from astromorphnet.models import build_dann, build_light_cnn
    >>> model = build_dann(build_light_cnn((32, 32, 1)))
    >>> sorted(model.output)
    ['domain', 'sersic']
    """
    from ._alignment import DANNAlignment, build_aligned

    return build_aligned(regressor, DANNAlignment(domain_units, strength))

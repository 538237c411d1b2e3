"""Domain-adversarial networks (DANN, Ganin et al. 2016): gradient reversal and the two-headed model."""

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
        self.strength = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.initial_strength),
            trainable=False, name="strength")

    def call(self, x):
        lam = ops.cast(self.strength, x.dtype)
        frozen = ops.stop_gradient(x)
        # Forward: exactly x (frozen - x is exactly 0).  Backward: d/dx = -λ.
        return frozen + lam * (frozen - x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
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
    """

    def __init__(self, layer, strength, warmup_steps, gamma=10.0):
        super().__init__()
        self.layer, self.strength = layer, float(strength)
        self.warmup_steps, self.gamma = int(warmup_steps), float(gamma)
        self.step = 0

    def value(self, step):
        """λ after ``step`` training steps."""
        if self.warmup_steps <= 0:
            return self.strength
        p = min(step / self.warmup_steps, 1.0)
        return self.strength * (2.0 / (1.0 + np.exp(-self.gamma * p)) - 1.0)

    def on_train_batch_begin(self, batch, logs=None):
        self.layer.strength.assign(self.value(self.step))
        self.step += 1

    def on_train_end(self, logs=None):
        self.layer.strength.assign(self.strength)


def feature_layer(model):
    """The layer whose output is the shared feature vector (named ``"features"``).

    Raises
    ------
    ValueError
        If ``model`` has no layer named ``"features"``.
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

    Examples
    --------
    >>> from astromorphnet.models import build_dann, build_light_cnn
    >>> model = build_dann(build_light_cnn((32, 32, 1)))
    >>> sorted(model.output)
    ['domain', 'sersic']
    """
    features = feature_layer(regressor).output
    x = GradientReversal(strength, name="gradient_reversal")(features)
    for i, units in enumerate(domain_units):
        x = layers.Dense(units, activation="relu", name=f"domain_dense_{i}")(x)
    domain = layers.Dense(1, activation="sigmoid", name="domain")(x)
    return keras.Model(regressor.inputs, {"sersic": regressor.outputs[0], "domain": domain},
                       name=f"dann_{regressor.name}")

"""Keras network builders: ``builder(input_shape, n_outputs) -> keras.Model``."""

import keras
from keras import layers, regularizers

__all__ = ["ARCHITECTURES", "build_thesis_cnn", "build_light_cnn", "get_architecture"]


def _conv_pair(x, filters, kernel, l2, pool_padding):
    for _ in range(2):
        x = layers.Conv2D(filters, kernel, activation="relu", padding="same",
                          kernel_regularizer=regularizers.L2(l2))(x)
    return layers.MaxPooling2D(2, padding=pool_padding)(x)


def build_thesis_cnn(input_shape, n_outputs=4):
    """The reference thesis's transfer-learning CNN (its listing 5.3).

    BatchNorm; paired 4×4 convolutions with 16, 32, 64, 128 and 256 (3×3)
    filters, ReLU and L2 1e-4, each pair followed by 2×2 max-pooling (with a
    BatchNorm after the second); dense 128 → 64 (dropout 1e-4 between),
    BatchNorm and ``n_outputs`` outputs.

    The output layer is linear, where the listing has ReLU: the targets are
    standardised, so half of them are negative and a ReLU output cannot
    reach them.

    Parameters
    ----------
    input_shape : tuple of int
        ``(ny, nx, channels)``; at least 32×32 is sensible (five poolings).
    n_outputs : int, optional
        Number of regression outputs.

    Returns
    -------
    model : `keras.Model`

    Examples
    --------
    >>> from astromorphnet.models import build_thesis_cnn
    >>> model = build_thesis_cnn((128, 128, 1))
    >>> model.output_shape
    (None, 4)
    """
    inputs = keras.Input(input_shape)
    x = layers.BatchNormalization()(inputs)
    # "same" pooling throughout keeps small (and 1-pixel-high) stamps valid.
    x = _conv_pair(x, 16, 4, 1e-4, "same")
    x = _conv_pair(x, 32, 4, 1e-4, "same")
    x = layers.BatchNormalization()(x)
    for filters, kernel in ((64, 4), (128, 4), (256, 3)):
        x = _conv_pair(x, filters, kernel, 1e-4, "same")
    x = layers.Flatten(name="features")(x)
    x = layers.Dropout(1e-4)(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(1e-4)(x)
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dropout(1e-4)(x)
    x = layers.BatchNormalization()(x)
    outputs = layers.Dense(n_outputs)(x)
    return keras.Model(inputs, outputs, name="thesis_cnn")


def build_light_cnn(input_shape, n_outputs=4):
    """A small CNN for CPU work, tests and quick experiments.

    BatchNorm; three 3×3 convolution pairs (16, 32, 64 filters, ReLU) each
    followed by 2×2 max-pooling; dense 64 and ``n_outputs`` linear outputs.
    About 20× fewer operations than `build_thesis_cnn` at 64×64.

    Parameters
    ----------
    input_shape : tuple of int
        ``(ny, nx, channels)``.
    n_outputs : int, optional
        Number of regression outputs.

    Returns
    -------
    model : `keras.Model`

    Examples
    --------
    >>> from astromorphnet.models import build_light_cnn
    >>> build_light_cnn((32, 32, 1)).output_shape
    (None, 4)
    """
    inputs = keras.Input(input_shape)
    x = layers.BatchNormalization()(inputs)
    for filters in (16, 32, 64):
        x = _conv_pair(x, filters, 3, 1e-5, "same")
    x = layers.Flatten(name="features")(x)
    x = layers.Dense(64, activation="relu")(x)
    outputs = layers.Dense(n_outputs)(x)
    return keras.Model(inputs, outputs, name="light_cnn")


#: Named architectures accepted by the estimators' ``architecture`` parameter.
ARCHITECTURES = {"thesis": build_thesis_cnn, "light": build_light_cnn}


def get_architecture(architecture):
    """Return the builder for a name in `ARCHITECTURES`, or a callable as is.

    Parameters
    ----------
    architecture : str or callable
        A name in `ARCHITECTURES`, or ``builder(input_shape, n_outputs)``
        returning an uncompiled `keras.Model`.

    Returns
    -------
    builder : callable

    Raises
    ------
    ValueError
        If the name is unknown.

    Examples
    --------
    >>> from astromorphnet.models import get_architecture
    >>> get_architecture("light").__name__
    'build_light_cnn'
    """
    if callable(architecture):
        return architecture
    try:
        return ARCHITECTURES[architecture]
    except (KeyError, TypeError):
        raise ValueError(
            f"architecture must be one of {sorted(ARCHITECTURES)} or a callable "
            f"builder(input_shape, n_outputs); got {architecture!r}") from None

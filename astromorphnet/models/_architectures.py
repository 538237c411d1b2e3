"""Keras network builders: ``builder(input_shape, n_outputs) -> keras.Model``."""

import keras
from keras import layers, regularizers

__all__ = ["ARCHITECTURES", "build_light_cnn", "build_resnet_cnn", "build_thesis_cnn",
           "get_architecture"]


def _conv_pair(x, filters, kernel, l2, pool_padding, first_padding="same"):
    for padding in (first_padding, "same"):
        x = layers.Conv2D(filters, kernel, activation="relu", padding=padding,
                          kernel_regularizer=regularizers.L2(l2))(x)
    return layers.MaxPooling2D(2, padding=pool_padding)(x)


# Moving statistics settle within ~50 steps (Keras's 0.99 needs ~500): a
# short fine-tuning on a few hundred target galaxies then predicts as it trained.
_BN_MOMENTUM = 0.9


def _conv_bn(x, filters, kernel, l2, strides=1, relu=True):
    # No bias: the BatchNormalization that follows has its own offset.
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                      kernel_regularizer=regularizers.L2(l2))(x)
    x = layers.BatchNormalization(momentum=_BN_MOMENTUM)(x)
    return layers.ReLU()(x) if relu else x


def _residual_stage(x, filters, l2):
    """One residual block (He et al. 2016) at the input's resolution, then 2×2 max-pooling.

    The pooling closes the stage, so `freeze_layers` counts stages as blocks.
    """
    shortcut = x
    if x.shape[-1] != filters:
        # The stage after each down-sampling widens the channels: a 1×1
        # projection brings the shortcut to the new width.
        shortcut = _conv_bn(x, filters, 1, l2, relu=False)
    y = _conv_bn(x, filters, 3, l2)
    y = _conv_bn(y, filters, 3, l2, relu=False)
    x = layers.ReLU()(layers.Add()([shortcut, y]))
    # "same": a stamp too small to halve again (16 px) keeps its 1×1 map.
    return layers.MaxPooling2D(2, padding="same")(x)


def _outputs(x, n_outputs):
    # float32 even under a mixed-precision policy: the loss needs the precision.
    return layers.Dense(n_outputs, dtype="float32")(x)


def _dense_head(inputs, features, n_outputs, name):
    """The model from ``inputs`` to its ``features``, dense 64 (ReLU) and the outputs."""
    x = layers.Dense(64, activation="relu")(features)
    return keras.Model(inputs, _outputs(x, n_outputs), name=name)


def build_thesis_cnn(input_shape, n_outputs=4):
    """The reference thesis's transfer-learning CNN (its listing 5.3).

    BatchNorm; paired 4×4 convolutions with 16, 32, 64, 128 and 256 (3×3)
    filters, ReLU and L2 1e-4, each pair followed by 2×2 max-pooling (with a
    BatchNorm after the second); dense 128 → 64 (dropout 1e-4 between),
    BatchNorm and ``n_outputs`` outputs.

    Paddings follow the listing: the first convolution and the first two
    poolings are "valid", the rest "same" (128×128 stamps give 4×4×256
    features).  The output layer is linear, where the listing has ReLU: the
    targets are standardised, so half of them are negative and a ReLU output
    cannot reach them.  It computes in float32 even under a mixed-precision
    policy.

    Parameters
    ----------
    input_shape : tuple of int
        ``(ny, nx, channels)``; at least 8×8, and 32×32 or more is sensible
        (five poolings).
    n_outputs : int, optional
        Number of regression outputs.

    Returns
    -------
    model : `keras.Model`
        The uncompiled network, named ``"thesis_cnn"``; its ``"features"``
        layer ends the convolutional feature extractor.

    Raises
    ------
    ValueError
        If Keras cannot build the network for ``input_shape`` (e.g. one of
        a length other than 3, or with a negative dimension).

    Examples
    --------
    >>> from astromorphnet.models import build_thesis_cnn
    >>> model = build_thesis_cnn((128, 128, 1))
    >>> model.output_shape
    (None, 4)
    """
    inputs = keras.Input(input_shape)
    x = layers.BatchNormalization()(inputs)
    x = _conv_pair(x, 16, 4, 1e-4, "valid", first_padding="valid")
    x = _conv_pair(x, 32, 4, 1e-4, "valid")
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
    return keras.Model(inputs, _outputs(x, n_outputs), name="thesis_cnn")


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
        The uncompiled network, named ``"light_cnn"``; its ``"features"``
        layer ends the convolutional feature extractor.

    Raises
    ------
    ValueError
        If Keras cannot build the network for ``input_shape`` (e.g. one of
        a length other than 3, or with a negative dimension).

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
    return _dense_head(inputs, layers.Flatten(name="features")(x), n_outputs, "light_cnn")


def build_resnet_cnn(input_shape, n_outputs=4):
    """A small residual CNN with global pooling: the fast network for CPUs.

    BatchNorm; a stem of two strided 3×3 convolutions (16 and 32 filters)
    that brings the stamp to a quarter of its size; three residual stages
    (32, 64 and 128 filters), each one block of two 3×3 convolutions with
    BatchNorm and ReLU around an identity shortcut (a 1×1 projection where
    the width doubles) followed by 2×2 max-pooling; the global average and
    global maximum of the last feature map, concatenated (256 features);
    dense 64 (ReLU) and ``n_outputs`` linear outputs.  Convolutions carry
    L2 1e-5; BatchNorm momentum is 0.9 (Keras: 0.99), so its moving
    statistics settle within a short fine-tuning.

    Global pooling makes the network independent of the stamp size (the
    same weights at any size) and keeps the feature vector read by the
    domain-adaptation heads small; the strided stem reads every pixel, so
    the size and shape of compact galaxies survive the down-sampling.
    About 0.33 M parameters; at 64×64 it predicts ~5× faster than
    `build_light_cnn` and ~6× faster than `build_thesis_cnn` on a CPU
    (2,300 stamps/s on two cores).

    Parameters
    ----------
    input_shape : tuple of int
        ``(ny, nx, channels)``.
    n_outputs : int, optional
        Number of regression outputs.

    Returns
    -------
    model : `keras.Model`
        The uncompiled network, named ``"resnet_cnn"``; its ``"features"``
        layer (the pooled vector) ends the convolutional feature extractor,
        and each residual stage ends at a max-pooling layer (the blocks of
        `freeze_layers`).

    Raises
    ------
    ValueError
        If Keras cannot build the network for ``input_shape`` (e.g. one of
        a length other than 3, or with a negative dimension).

    Examples
    --------
    >>> from astromorphnet.models import build_resnet_cnn
    >>> model = build_resnet_cnn((64, 64, 1))
    >>> model.output_shape, model.get_layer("features").output.shape
    ((None, 4), (None, 256))
    """
    l2 = 1e-5
    inputs = keras.Input(input_shape)
    x = layers.BatchNormalization(momentum=_BN_MOMENTUM)(inputs)
    x = _conv_bn(x, 16, 3, l2, strides=2)
    x = _conv_bn(x, 32, 3, l2, strides=2)
    for filters in (32, 64, 128):
        x = _residual_stage(x, filters, l2)
    # The maximum keeps the peak response that the average dilutes over the
    # stamp (a compact galaxy fills few positions of the map).
    features = layers.Concatenate(name="features")([layers.GlobalAveragePooling2D()(x),
                                                    layers.GlobalMaxPooling2D()(x)])
    return _dense_head(inputs, features, n_outputs, "resnet_cnn")


#: Named architectures accepted by the estimators' ``architecture`` parameter.
ARCHITECTURES = {"thesis": build_thesis_cnn, "light": build_light_cnn,
                 "resnet": build_resnet_cnn}


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
        ``builder(input_shape, n_outputs)`` returning an uncompiled
        `keras.Model`.

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

"""Choosing which layers of a pretrained network train during fine-tuning."""

from keras import layers

from ._dann import feature_layer

__all__ = ["freeze_layers"]


def freeze_layers(model, trainable="all"):
    """Freeze the layers of ``model`` that should keep their pretrained weights.

    Blocks end at pooling layers; the head is everything after the layer
    named ``"features"``.  Frozen BatchNormalization layers run in inference
    mode (Keras 3), keeping the pretrained statistics.

    Parameters
    ----------
    model : `keras.Model`
        A functional network (modified in place; compile it afterwards).
    trainable : {"all", "head"} or int, default="all"
        ``"all"`` trains every layer (the reference thesis's choice),
        ``"head"`` the dense layers after the features only, and an int
        ``k`` the last ``k`` convolution blocks plus the head.

    Returns
    -------
    n_frozen : int
        Number of layers frozen.

    Raises
    ------
    ValueError
        If ``trainable`` is not one of the above, or ``k`` exceeds the
        number of blocks.

    Examples
    --------
    >>> from astromorphnet.models import build_light_cnn, freeze_layers
    >>> model = build_light_cnn((32, 32, 1))
    >>> freeze_layers(model, 1) < freeze_layers(build_light_cnn((32, 32, 1)), "head")
    True
    """
    stack = model.layers
    if isinstance(trainable, str):
        if trainable == "all":
            first = 0
        elif trainable == "head":
            first = stack.index(feature_layer(model)) + 1
        else:
            raise ValueError(f"trainable must be 'all', 'head' or a number of blocks; "
                             f"got {trainable!r}")
    else:
        ends = [i for i, layer in enumerate(stack) if isinstance(layer, layers.MaxPooling2D)]
        if int(trainable) != trainable or not 0 <= trainable <= len(ends):
            raise ValueError(f"trainable={trainable!r}: the network has {len(ends)} "
                             f"convolution blocks; choose 0 to {len(ends)}, 'all' or 'head'")
        first = 0 if trainable == len(ends) else ends[len(ends) - 1 - int(trainable)] + 1
    for layer in stack:
        layer.trainable = True
    for layer in stack[:first]:
        layer.trainable = False
    return first

"""Deep ensembles inside one Keras network."""

import keras
from keras import layers

from ._dann import feature_layer

__all__ = ["MemberSplit", "build_ensemble"]


@keras.saving.register_keras_serializable(package="astromorphnet")
class MemberSplit(layers.Layer):
    """Split concatenated member features back into one tensor per member.

    Parameters
    ----------
    sizes : list of int
        Feature width of each member, in order.
    **kwargs
        Passed to `keras.layers.Layer`.

    Examples
    --------
    >>> import numpy as np
    >>> from astromorphnet.models import MemberSplit
    >>> [tuple(part.shape) for part in MemberSplit([2, 3])(np.zeros((1, 5), np.float32))]
    [(1, 2), (1, 3)]
    """

    def __init__(self, sizes, **kwargs):
        super().__init__(**kwargs)
        self.sizes = [int(size) for size in sizes]

    def call(self, x):
        """The member features: a list of tensors of widths ``sizes``.

        Parameters
        ----------
        x : tensor
            Concatenated features, shape ``(n, sum(sizes))``.

        Returns
        -------
        parts : list of tensor
            One ``(n, size)`` tensor per member.

        Examples
        --------
        >>> import numpy as np
        >>> from astromorphnet.models import MemberSplit
        >>> len(MemberSplit([1, 1]).call(np.zeros((2, 2), np.float32)))
        2
        """
        starts = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        return [x[:, start:start + size] for start, size in zip(starts, self.sizes)]

    def compute_output_shape(self, input_shape):
        """One ``(n, size)`` shape per member.

        Parameters
        ----------
        input_shape : tuple
            ``(n, sum(sizes))``.

        Returns
        -------
        shapes : list of tuple
            The members' shapes.

        Examples
        --------
        >>> from astromorphnet.models import MemberSplit
        >>> MemberSplit([2, 3]).compute_output_shape((None, 5))
        [(None, 2), (None, 3)]
        """
        return [(input_shape[0], size) for size in self.sizes]

    def get_config(self):
        """The layer's configuration, for Keras serialisation.

        Returns
        -------
        config : dict
            Keras's layer configuration plus ``sizes``.

        Examples
        --------
        >>> from astromorphnet.models import MemberSplit
        >>> MemberSplit([2, 3]).get_config()["sizes"]
        [2, 3]
        """
        return {**super().get_config(), "sizes": self.sizes}


def build_ensemble(builder, n_members):
    """A builder of ``n_members`` independent networks trained as one.

    Each member is ``builder``'s network with its own random initialisation
    (a deep ensemble, Lakshminarayanan et al. 2017).  The members' feature
    extractors read the same input; their features are concatenated into a
    layer named ``"features"`` (so domain adaptation and head-only
    fine-tuning work as for one network), split back, and each member's head
    reads its own part.  The outputs are the members' outputs side by side.

    Parameters
    ----------
    builder : callable
        ``builder(input_shape, n_outputs) -> keras.Model`` with a
        ``"features"`` layer followed by a chain of head layers (as
        `build_light_cnn` and `build_thesis_cnn`).
    n_members : int
        Ensemble size; 1 returns ``builder`` itself.

    Returns
    -------
    builder : callable
        ``builder(input_shape, n_outputs)`` returning a network with
        ``n_members · n_outputs`` outputs.

    Raises
    ------
    ValueError
        If a member has no ``"features"`` layer, or its head is not a chain.

    Examples
    --------
    >>> from astromorphnet.models import build_ensemble, build_light_cnn
    >>> build_ensemble(build_light_cnn, 3)((32, 32, 1), 8).output_shape
    (None, 24)
    """
    if n_members == 1:
        return builder

    def build(input_shape, n_outputs):
        inputs = keras.Input(input_shape)
        members = [builder(input_shape, n_outputs) for _ in range(n_members)]
        features = []
        for i, member in enumerate(members):
            extractor = keras.Model(member.inputs, feature_layer(member).output,
                                    name=f"member_{i}_features")
            features.append(layers.Flatten()(extractor(inputs)))
        joint = layers.Concatenate(name="features")(features)
        parts = MemberSplit([int(f.shape[-1]) for f in features], name="member_split")(joint)
        outputs = [_head(member, part) for member, part in zip(members, parts)]
        # float32 even under a mixed-precision policy, as the members' outputs.
        return keras.Model(inputs, layers.Concatenate(name="members", dtype="float32")(outputs),
                           name=f"ensemble_{members[0].name}")

    return build


def _head(member, x):
    """Apply the layers of ``member`` after its features to ``x`` (a chain)."""
    stack = member.layers
    head = stack[stack.index(feature_layer(member)) + 1:]
    for layer in head:
        if len(layer._inbound_nodes) != 1 or isinstance(layer.input, (list, dict)):
            raise ValueError(f"ensembles need a network whose head (the layers after "
                             f"'features') is a chain; layer {layer.name!r} of "
                             f"{member.name!r} is not")
        x = layer(x)
    return x

"""Pluggable feature-alignment losses for domain adaptation: DANN, Deep CORAL, MMD.

One seam, after skada's ``BaseDALoss``: a method is a small `AlignmentLoss`
subclass that says which head it adds on the shared ``"features"`` layer
(`AlignmentLoss.head`) and how far apart the two domains are on a batch
(`AlignmentLoss.discrepancy`).  Everything else (balanced batches, the
training loop, early stopping) is shared by `~astromorphnet.AdversarialDARegressor`.
"""

import keras
from keras import layers, ops

from ._dann import GradientReversal, ReversalSchedule, feature_layer

__all__ = ["AlignmentLoss", "CORALAlignment", "DANNAlignment", "MMDAlignment", "build_aligned",
           "get_alignment"]


@keras.saving.register_keras_serializable(package="astromorphnet")
class AlignmentLoss(keras.losses.Loss):
    """Base class of the domain-alignment losses (the ``"domain"`` output's loss).

    A subclass defines `discrepancy` and, if it needs more than the shared
    features themselves, `head`; it is a Keras loss, so a model compiled with
    it saves and reloads (register the subclass with
    ``keras.saving.register_keras_serializable`` and give it a
    ``get_config`` holding its parameters).

    Called as a loss, ``y_true`` is the domain label of each row (1 = target,
    0 = source) and ``y_pred`` the head's output.  Sample weights are
    importance weights *within* each domain: each domain's weights are
    normalised to sum to 1, so a row of weight 0 drops out of the domain's
    statistics, and a weight scaling a whole domain changes nothing.  A batch
    missing either domain (or whose weights on it are all 0) gives 0.

    Parameters
    ----------
    name : str, optional
        The loss's name (Keras's).

    Examples
    --------
    A further method is one small class, e.g. matching the domains' means:

    >>> import numpy as np
    >>> from keras import ops
    >>> from astromorphnet.models import AlignmentLoss
    >>> class MeanAlignment(AlignmentLoss):
    ...     def discrepancy(self, outputs, source_weight, target_weight):
    ...         gap = ops.matmul(source_weight - target_weight, outputs)
    ...         return ops.sum(gap ** 2)
    >>> domain = np.array([0, 0, 1, 1], np.float32)
    >>> outputs = np.array([[0.0], [2.0], [3.0], [5.0]], np.float32)
    >>> float(MeanAlignment()(domain, outputs))
    9.0
    """

    #: Keras metrics of the ``"domain"`` output (e.g. a classifier's accuracy).
    metrics = ()

    def __init__(self, name=None):
        super().__init__(name=name, dtype="float32")

    def head(self, features):
        """The ``"domain"`` output built on the shared features.

        The default is the features themselves (an identity layer, in
        float32 even under a mixed-precision policy), for losses that compare
        the two domains' feature distributions directly.

        Parameters
        ----------
        features : Keras tensor
            Output of the network's ``"features"`` layer, shape ``(n, d)``.

        Returns
        -------
        output : Keras tensor
            A tensor from a layer named ``"domain"``.

        Examples
        --------
        >>> import keras
        >>> from astromorphnet.models import CORALAlignment
        >>> CORALAlignment().head(keras.Input((8,))).shape
        (None, 8)
        """
        return layers.Identity(name="domain", dtype="float32")(features)

    def discrepancy(self, outputs, source_weight, target_weight):
        """How far apart the two domains are on one batch (a scalar to minimise).

        Parameters
        ----------
        outputs : tensor of shape (n, d)
            The head's output for every row of the batch.
        source_weight, target_weight : tensor of shape (n,)
            Each domain's row weights, summing to 1 over that domain and 0
            on the other domain's rows.

        Returns
        -------
        loss : scalar tensor
            The discrepancy; 0 when the domains match.

        Raises
        ------
        NotImplementedError
            In the base class: a subclass defines it.

        Examples
        --------
        >>> import numpy as np
        >>> from astromorphnet.models import CORALAlignment
        >>> x = np.random.default_rng(0).normal(size=(6, 2)).astype(np.float32)
        >>> w = np.full(6, 1 / 6, np.float32)
        >>> float(CORALAlignment().discrepancy(x, w, w))
        0.0
        """
        raise NotImplementedError(f"{type(self).__name__} must define discrepancy()")

    def callbacks(self, model, steps_per_epoch):
        """Keras callbacks the method needs during training (none by default).

        Parameters
        ----------
        model : `keras.Model`
            The two-headed network being trained.
        steps_per_epoch : int
            Batches per epoch.

        Returns
        -------
        callbacks : list of `keras.callbacks.Callback`

        Examples
        --------
        >>> from astromorphnet.models import MMDAlignment
        >>> MMDAlignment().callbacks(None, 10)
        []
        """
        return []

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The discrepancy of a batch from domain labels and head outputs.

        Parameters
        ----------
        y_true : tensor of shape (n,) or (n, 1)
            1 for target rows, 0 for source rows.
        y_pred : tensor of shape (n, d)
            The head's output.
        sample_weight : tensor of shape (n,), optional
            Row weights (see the class's description).

        Returns
        -------
        loss : scalar tensor

        Examples
        --------
        >>> import numpy as np
        >>> from astromorphnet.models import MMDAlignment
        >>> x = np.arange(8, dtype=np.float32).reshape(4, 2)
        >>> float(MMDAlignment()(np.zeros(4, np.float32), x))  # no target row
        0.0
        """
        outputs = ops.convert_to_tensor(y_pred, "float32")
        outputs = ops.reshape(outputs, (ops.shape(outputs)[0], -1))
        target = ops.reshape(ops.cast(y_true, "float32"), (-1,))
        weight = (ops.ones_like(target) if sample_weight is None
                  else ops.reshape(ops.cast(sample_weight, "float32"), (-1,)))
        source_weight, target_weight = weight * (1.0 - target), weight * target
        source_total, target_total = ops.sum(source_weight), ops.sum(target_weight)
        present = ops.logical_and(source_total > 0, target_total > 0)
        tiny = 1e-12
        value = self.discrepancy(outputs, source_weight / ops.maximum(source_total, tiny),
                                 target_weight / ops.maximum(target_total, tiny))
        return ops.where(present, value, ops.zeros_like(value))

    def get_config(self):
        """The loss's parameters, for Keras serialisation.

        Returns
        -------
        config : dict

        Examples
        --------
        >>> from astromorphnet.models import MMDAlignment
        >>> MMDAlignment(n_kernels=3).get_config()["n_kernels"]
        3
        """
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        """Rebuild a loss from `get_config`'s output.

        Parameters
        ----------
        config : dict

        Returns
        -------
        loss : AlignmentLoss

        Examples
        --------
        >>> from astromorphnet.models import CORALAlignment
        >>> CORALAlignment.from_config(CORALAlignment().get_config()).name
        'coral'
        """
        return cls(**config)

    def __repr__(self):
        params = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items()
                           if key != "name")
        return f"{type(self).__name__}({params})"


@keras.saving.register_keras_serializable(package="astromorphnet")
class DANNAlignment(AlignmentLoss):
    """Domain-adversarial alignment (DANN, Ganin et al. 2016).

    The head is a domain classifier (dense ``units``, ReLU, one sigmoid
    output: probability of the target domain) behind a `GradientReversal`
    layer; the loss is its binary cross-entropy, averaged within each domain
    and the two averages averaged (on the balanced batches of
    `~astromorphnet.AdversarialDARegressor` with unit weights: the plain mean).  The
    classifier learns to tell the domains apart while the reversed gradient
    drives the features to make that impossible.

    Parameters
    ----------
    units : tuple of int, default=(128, 64)
        Hidden layers of the domain classifier.
    strength : float, default=1.0
        Gradient-reversal strength λ.
    warmup : int, default=0
        Epochs over which λ rises from 0 with DANN's schedule
        (`ReversalSchedule`); 0 keeps λ constant.
    name : str, default="dann"
        The loss's name.

    Examples
    --------
    >>> import keras
    >>> from astromorphnet.models import DANNAlignment
    >>> DANNAlignment(units=(8,)).head(keras.Input((4,))).shape
    (None, 1)
    """

    metrics = ("binary_accuracy",)

    def __init__(self, units=(128, 64), strength=1.0, warmup=0, name="dann"):
        super().__init__(name=name)
        self.units = tuple(int(u) for u in units)
        self.strength, self.warmup = float(strength), int(warmup)

    def head(self, features):
        """Gradient reversal, then the domain classifier.

        Parameters
        ----------
        features : Keras tensor
            The shared features.

        Returns
        -------
        output : Keras tensor
            Probability of the target domain, shape ``(n, 1)``.

        Examples
        --------
        >>> import keras
        >>> from astromorphnet.models import DANNAlignment
        >>> DANNAlignment().head(keras.Input((4,))).shape
        (None, 1)
        """
        x = GradientReversal(self.strength, name="gradient_reversal")(features)
        for i, units in enumerate(self.units):
            x = layers.Dense(units, activation="relu", name=f"domain_dense_{i}")(x)
        # float32 even under a mixed-precision policy, for a stable cross-entropy.
        return layers.Dense(1, activation="sigmoid", name="domain", dtype="float32")(x)

    def discrepancy(self, outputs, source_weight, target_weight):
        """The domain classifier's cross-entropy, averaged per domain.

        Parameters
        ----------
        outputs : tensor of shape (n, 1)
            Probabilities of the target domain.
        source_weight, target_weight : tensor of shape (n,)
            Each domain's normalised row weights.

        Returns
        -------
        loss : scalar tensor

        Examples
        --------
        >>> import numpy as np
        >>> from astromorphnet.models import DANNAlignment
        >>> p = np.full((2, 1), 0.5, np.float32)
        >>> round(float(DANNAlignment().discrepancy(p, np.array([1.0, 0]), np.array([0, 1.0]))), 4)
        0.6931
        """
        p = outputs[:, 0]
        target = ops.cast(target_weight > 0, p.dtype)
        cross_entropy = ops.binary_crossentropy(target, p)
        return 0.5 * ops.sum((source_weight + target_weight) * cross_entropy)

    def callbacks(self, model, steps_per_epoch):
        """The reversal-strength schedule (`ReversalSchedule`).

        Parameters
        ----------
        model : `keras.Model`
            The network holding the ``"gradient_reversal"`` layer.
        steps_per_epoch : int
            Batches per epoch (``warmup`` is in epochs).

        Returns
        -------
        callbacks : list of `keras.callbacks.Callback`

        Examples
        --------
        >>> import keras
        >>> from astromorphnet.models import DANNAlignment
        >>> dann = DANNAlignment(warmup=2)
        >>> inputs = keras.Input((4,))
        >>> model = keras.Model(inputs, dann.head(inputs))
        >>> dann.callbacks(model, 10)[0].warmup_steps
        20
        """
        return [ReversalSchedule(model.get_layer("gradient_reversal"), self.strength,
                                 self.warmup * steps_per_epoch)]

    def get_config(self):
        """The loss's parameters, for Keras serialisation.

        Returns
        -------
        config : dict

        Examples
        --------
        >>> from astromorphnet.models import DANNAlignment
        >>> DANNAlignment(units=(8,)).get_config()["units"]
        (8,)
        """
        return {**super().get_config(), "units": self.units, "strength": self.strength,
                "warmup": self.warmup}


@keras.saving.register_keras_serializable(package="astromorphnet")
class CORALAlignment(AlignmentLoss):
    """Deep CORAL: match the two domains' feature covariances (Sun & Saenko 2016).

    ``||C_s - C_t||²_F / (4 d²)`` with ``C`` each domain's (weighted,
    unbiased) covariance of the ``d`` features, as `numpy.cov` with
    ``aweights`` computes it.

    Parameters
    ----------
    name : str, default="coral"
        The loss's name.

    Examples
    --------
    >>> import numpy as np
    >>> from astromorphnet.models import CORALAlignment
    >>> x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    >>> domain = np.repeat([0.0, 1.0], 32)
    >>> float(CORALAlignment()(domain, x * np.where(domain, 3, 1)[:, None])) > 0.1
    True
    """

    def __init__(self, name="coral"):
        super().__init__(name=name)

    def discrepancy(self, outputs, source_weight, target_weight):
        """The CORAL distance between the domains' covariances.

        Parameters
        ----------
        outputs : tensor of shape (n, d)
            The features.
        source_weight, target_weight : tensor of shape (n,)
            Each domain's normalised row weights.

        Returns
        -------
        loss : scalar tensor

        Examples
        --------
        >>> import numpy as np
        >>> from astromorphnet.models import CORALAlignment
        >>> x = np.array([[0.0], [2.0], [0.0], [4.0]], np.float32)
        >>> s = np.array([0.5, 0.5, 0, 0], np.float32)
        >>> float(CORALAlignment().discrepancy(x, s, s[::-1]))  # variances 2 and 8
        9.0
        """
        d = ops.cast(ops.shape(outputs)[1], outputs.dtype)
        gap = _covariance(outputs, source_weight) - _covariance(outputs, target_weight)
        return ops.sum(gap ** 2) / (4.0 * d ** 2)


@keras.saving.register_keras_serializable(package="astromorphnet")
class MMDAlignment(AlignmentLoss):
    """Multi-kernel maximum mean discrepancy of the features (DAN, Long et al. 2015).

    The (biased, always ≥ 0) estimate of MMD² between the two domains with
    a kernel that is the mean of ``n_kernels`` Gaussians
    ``exp(-||x - y||² / (2 σ²))``: ``σ²`` spans ``2^k`` times the median
    squared distance between distinct rows of the batch (both domains;
    the median heuristic), for ``k`` from ``-(n_kernels // 2)`` on.  The
    bandwidths follow the features but are not differentiated through.

    Parameters
    ----------
    n_kernels : int, default=5
        Number of Gaussian kernels.
    name : str, default="mmd"
        The loss's name.

    Raises
    ------
    ValueError
        If ``n_kernels`` is not a positive integer.

    Examples
    --------
    >>> import numpy as np
    >>> from astromorphnet.models import MMDAlignment
    >>> x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    >>> domain = np.repeat([0.0, 1.0], 32)
    >>> shifted = x + 2.0 * domain[:, None]
    >>> float(MMDAlignment()(domain, shifted)) > 10 * float(MMDAlignment()(domain, x))
    True
    """

    def __init__(self, n_kernels=5, name="mmd"):
        super().__init__(name=name)
        if int(n_kernels) != n_kernels or n_kernels < 1:
            raise ValueError(f"n_kernels must be a positive integer; got {n_kernels!r}")
        self.n_kernels = int(n_kernels)

    def discrepancy(self, outputs, source_weight, target_weight):
        """The weighted MMD² between the domains.

        Parameters
        ----------
        outputs : tensor of shape (n, d)
            The features.
        source_weight, target_weight : tensor of shape (n,)
            Each domain's normalised row weights.

        Returns
        -------
        loss : scalar tensor

        Examples
        --------
        >>> import numpy as np
        >>> from astromorphnet.models import MMDAlignment
        >>> x = np.array([[0.0], [1.0], [0.0], [1.0]], np.float32)
        >>> s, t = np.array([0.5, 0.5, 0, 0]), np.array([0, 0, 0.5, 0.5])
        >>> abs(float(MMDAlignment().discrepancy(x, s, t))) < 1e-6
        True
        """
        squared = ops.sum(outputs ** 2, axis=1)
        distance = ops.maximum(squared[:, None] + squared[None, :]
                               - 2.0 * ops.matmul(outputs, ops.transpose(outputs)), 0.0)
        n = ops.shape(outputs)[0]
        # The n zero diagonal entries sort first: the median of the distinct
        # pairs is at n + n(n-1)/2 in the sorted n² distances.
        ordered = ops.sort(ops.reshape(distance, (-1,)))
        middle = ops.minimum(n + (n * (n - 1)) // 2, n * n - 1)
        median = ops.stop_gradient(ops.maximum(ops.take(ordered, middle), 1e-12))
        kernel = ops.zeros_like(distance)
        for k in range(-(self.n_kernels // 2), self.n_kernels - self.n_kernels // 2):
            kernel = kernel + ops.exp(-distance / (2.0 * median * 2.0 ** k))
        kernel = kernel / self.n_kernels
        gap = source_weight - target_weight
        return ops.sum(gap[:, None] * kernel * gap[None, :])

    def get_config(self):
        """The loss's parameters, for Keras serialisation.

        Returns
        -------
        config : dict

        Examples
        --------
        >>> from astromorphnet.models import MMDAlignment
        >>> MMDAlignment().get_config()
        {'name': 'mmd', 'n_kernels': 5}
        """
        return {**super().get_config(), "n_kernels": self.n_kernels}


def _covariance(x, weight):
    """Weighted unbiased covariance (``numpy.cov(..., aweights=weight)``, weights summing to 1)."""
    mean = ops.matmul(weight, x)
    centred = x - mean[None, :]
    # ddof=1 with analytic weights: divide by 1 - Σw² (n - 1 over n for equal weights).
    norm = ops.maximum(1.0 - ops.sum(weight ** 2), 1e-12)
    return ops.matmul(ops.transpose(centred * weight[:, None]), centred) / norm


#: The methods named by ``alignment="..."`` in `~astromorphnet.AdversarialDARegressor`.
ALIGNMENTS = {"dann": DANNAlignment, "coral": CORALAlignment, "mmd": MMDAlignment}


def get_alignment(alignment, **dann_params):
    """A fresh `AlignmentLoss` from a name or an instance.

    Parameters
    ----------
    alignment : {"dann", "coral", "mmd"} or AlignmentLoss
        The method; an instance is copied (through its configuration), so
        training never changes the one given.
    **dann_params
        ``units``, ``strength``, ``warmup`` of `DANNAlignment`, used for
        ``"dann"`` only.

    Returns
    -------
    loss : AlignmentLoss

    Raises
    ------
    ValueError
        If ``alignment`` is neither a known name nor an `AlignmentLoss`.

    Examples
    --------
    >>> from astromorphnet.models import get_alignment
    >>> get_alignment("dann", units=(16,))
    DANNAlignment(units=(16,), strength=1.0, warmup=0)
    >>> get_alignment("coral")
    CORALAlignment()
    """
    if isinstance(alignment, AlignmentLoss):
        return type(alignment).from_config(alignment.get_config())
    if isinstance(alignment, str) and alignment in ALIGNMENTS:
        return ALIGNMENTS[alignment](**(dann_params if alignment == "dann" else {}))
    raise ValueError(f"alignment must be one of {sorted(ALIGNMENTS)} or an AlignmentLoss "
                     f"instance; got {alignment!r}")


def build_aligned(regressor, alignment):
    """Add an alignment head on the shared features of a regression network.

    The regressor's layers up to ``"features"`` are the shared extractor,
    its remaining layers the regression head; ``alignment.head`` reads the
    features (the reference thesis's Fig. 5.1 for `DANNAlignment`).

    Parameters
    ----------
    regressor : `keras.Model`
        A functional regression network with a ``"features"`` layer, e.g.
        from `build_thesis_cnn` or `build_light_cnn`.
    alignment : AlignmentLoss
        The method whose head to add.

    Returns
    -------
    model : `keras.Model`
        Outputs ``{"sersic": regression, "domain": head output}``; layers
        are shared with ``regressor``.  Its name is the alignment's name,
        an underscore and the regressor's name.

    Raises
    ------
    ValueError
        If ``regressor`` has no layer named ``"features"``.

    Examples
    --------
    >>> from astromorphnet.models import MMDAlignment, build_aligned, build_light_cnn
    >>> model = build_aligned(build_light_cnn((32, 32, 1)), MMDAlignment())
    >>> model.name, model.output["domain"].shape
    ('mmd_light_cnn', (None, 1024))
    """
    domain = alignment.head(feature_layer(regressor).output)
    return keras.Model(regressor.inputs, {"sersic": regressor.outputs[0], "domain": domain},
                       name=f"{alignment.name}_{regressor.name}")

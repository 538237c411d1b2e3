"""Domain adaptation by feature alignment (DANN, Deep CORAL, MMD), supervised or not."""

from numbers import Integral, Real

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

from ..catalog._targets import TARGETS
from ._base import NETWORK_CONSTRAINTS, BaseSersicRegressor, fit_atomically
from ._domains import DomainScoreMixin, check_sample_domain

__all__ = ["AdversarialDARegressor"]


class AdversarialDARegressor(DomainScoreMixin, BaseSersicRegressor):
    """Sérsic CNN trained on two domains at once with a feature-alignment loss.

    One network (the reference thesis's Fig. 5.1): a shared convolutional
    feature extractor, the regression head of ``architecture``, and the head
    of an alignment loss on the features
    (`~astromorphnet.models.build_aligned`).  The loss is
    ``alpha · regression + (1 - alpha) · alignment``; the alignment term
    drives the extractor towards features that do not tell simulated from
    real galaxies, so the regression learnt on simulations carries over.
    ``alignment`` picks the method:

    * ``"dann"`` (default, the thesis's): a domain classifier behind a
      gradient-reversal layer (`~astromorphnet.models.DANNAlignment`);
    * ``"coral"``: Deep CORAL, matching the domains' feature covariances
      (`~astromorphnet.models.CORALAlignment`);
    * ``"mmd"``: multi-kernel maximum mean discrepancy of the features
      (`~astromorphnet.models.MMDAlignment`);
    * an `~astromorphnet.models.AlignmentLoss` instance: any further method.

    * ``supervised=True``: every labelled row, source or target, feeds the
      regression loss (target rows with NaN labels are left out).
    * ``supervised=False`` (semi-supervised): the regression loss is masked
      on every target row, so target labels are never used, even when given,
      and no classical fit of real galaxies is needed.

    Batches hold as many source as target rows (the smaller domain is
    cycled), and the validation split is stratified on domain.  Training
    stops early on the validation regression loss, keeping the best epoch.

    Parameters
    ----------
    supervised : bool, default=True
        Use target labels in the regression loss.
    architecture : str or callable, default="resnet"
        Regression network (see `SersicCNNRegressor`); a callable builder
        must name the layer ending its feature extractor ``"features"``.
    targets : tuple of str, default=("mag", "r_eff", "sersic_n", "ellipticity")
        Parameters to learn.
    alignment : {"dann", "coral", "mmd"} or AlignmentLoss, default="dann"
        The alignment loss (see above).  An instance is copied, never
        changed by training.
    alpha : float, default=0.9
        Weight of the regression loss; the alignment loss gets ``1 - alpha``.
    reversal_strength : float, default=1.0
        Gradient-reversal strength λ (``alignment="dann"`` only).
    reversal_warmup : int, default=0
        Epochs over which λ rises from 0 with DANN's schedule
        ``2 / (1 + exp(-10 p)) - 1`` (`~astromorphnet.models.ReversalSchedule`);
        0 keeps λ constant (``alignment="dann"`` only).
    domain_units : tuple of int, default=(128, 64)
        Hidden layers of the domain classifier (``alignment="dann"`` only).
    learning_rate : float, default=1e-4
        Adam learning rate.
    batch_size : int, default=16
        Rows per batch, half from each domain.
    max_epochs : int, default=300
        Upper bound on epochs (an epoch passes once through the larger domain).
    patience : int, default=20
        Epochs without improvement of the validation regression loss before
        stopping.
    validation_fraction : float, default=0.2
        Fraction of each domain held out for early stopping.
    loss : str or keras loss, default="laplace"
        Regression loss on the standardised targets; a likelihood
        (``"laplace"``, ``"gaussian"``) gives per-galaxy errors (see
        `SersicCNNRegressor`).
    normalization, log_targets, image_size, n_members, coverage
        As for `SersicCNNRegressor`.
    augment, tta, bounded
        As for `SersicCNNRegressor`.
    zeropoint, pixel_scale, random_state, verbose
        As for `SersicCNNRegressor`.

    Attributes
    ----------
    model_ : `keras.Model`
        The two-headed network; outputs ``{"sersic", "domain"}``.
    alignment_ : `~astromorphnet.models.AlignmentLoss`
        The alignment loss used (the ``"domain"`` output's loss).
    history_ : dict
        Keras history: ``sersic_loss``, ``domain_loss`` (the alignment
        loss: the domain discrepancy per epoch), for DANN
        ``domain_binary_accuracy`` (near 0.5 once the features are
        domain-invariant), and their ``val_`` forms.
    n_epochs_, target_scaler_, normalizer_, input_shape_, unit_, targets_, label_range_
        As for `SersicCNNRegressor` (the target scaler is fitted on the rows
        that feed the regression loss only).
    likelihood_, n_members_, calibration_
        As for `SersicCNNRegressor`.
    saved_versions_ : dict or None
        Package versions of the session that saved this estimator (set by
        `load` or unpickling; None for files written before they were
        recorded); a refit drops it.

    See Also
    --------
    TransferLearningRegressor : fine-tune a simulation-trained network on labelled real galaxies.
    stack_domains : build ``X``, ``y`` and ``sample_domain`` from two sets.

    Notes
    -----
    Fit convention (scikit-learn's, as in skada): one ``X`` holding both
    domains, ``sample_domain`` positive for source (simulated) and negative
    for target (real) rows, ``y`` with NaN rows for unlabelled targets.  In a
    `~sklearn.pipeline.Pipeline` every row passes through every step.  In
    `~sklearn.model_selection.GridSearchCV`, enable metadata routing
    (``sklearn.set_config(enable_metadata_routing=True)``), request it with
    ``set_fit_request(sample_domain=True).set_score_request(sample_domain=True)``
    so that fit sees the domains and ``score`` judges target rows only, and
    split with a splitter stratified on domain, e.g.
    ``cv=list(StratifiedKFold(3).split(X, sample_domain))``.

    ``sample_weight`` weighs both losses; in the alignment loss the weights
    are importance weights within each domain (each domain's weights are
    normalised to sum to 1, see `~astromorphnet.models.AlignmentLoss`).

    DANN for regression is known to be fragile (the adversarial game can
    erase the features the regression needs); CORAL and MMD minimise a
    discrepancy directly and have no reversal schedule to tune.

    Examples
    --------
    >>> import numpy as np
    >>> from astromorphnet import AdversarialDARegressor
    >>> from astromorphnet.estimators import stack_domains
    >>> from astromorphnet.simulation import simulate_galaxies, simulate_real_like
    >>> ranges = {"r_eff": (1.5, 6), "sersic_n": (0.5, 3)}
    >>> sims, truth = simulate_galaxies(48, stamp_size=32, ranges=ranges, random_state=0)
    >>> real, _ = simulate_real_like(16, stamp_size=32, ranges=ranges, random_state=1)
    >>> X, y, domain = stack_domains(sims, truth, real)   # real rows unlabelled
    >>> reg = AdversarialDARegressor(supervised=False, architecture="light", max_epochs=2,
    ...                              zeropoint=truth.meta["zeropoint"], random_state=0)
    >>> reg.fit(X, y, sample_domain=domain).predict(real)["sersic_n"].shape
    (16,)
    """

    _parameter_constraints = {
        # First, so that the base class's constraints (where it has them) win.
        "augment": ["boolean"], "tta": ["boolean"], "bounded": ["boolean"],
        **BaseSersicRegressor._parameter_constraints, **NETWORK_CONSTRAINTS,
        "supervised": ["boolean"],
        "alignment": [StrOptions({"dann", "coral", "mmd"}),
                      HasMethods(["head", "discrepancy", "callbacks"])],
        "alpha": [Interval(Real, 0, 1, closed="right")],
        "reversal_strength": [Interval(Real, 0, None, closed="left")],
        "reversal_warmup": [Interval(Integral, 0, None, closed="left")],
        "domain_units": [list, tuple],
    }

    def __init__(self, supervised=True, architecture="resnet", *, targets=TARGETS,
                 alignment="dann", alpha=0.9, reversal_strength=1.0, reversal_warmup=0,
                 domain_units=(128, 64), learning_rate=1e-4, batch_size=16, max_epochs=300,
                 patience=20, validation_fraction=0.2, loss="laplace", normalization="asinh",
                 log_targets=("r_eff", "sersic_n"), image_size=None, n_members=1,
                 coverage=0.68, augment=True, tta=False, bounded=True, zeropoint=None,
                 pixel_scale=None, random_state=None, verbose=0):
        self.supervised = supervised
        self.architecture = architecture
        self.targets = targets
        self.alignment = alignment
        self.alpha = alpha
        self.reversal_strength = reversal_strength
        self.reversal_warmup = reversal_warmup
        self.domain_units = domain_units
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.loss = loss
        self.normalization = normalization
        self.log_targets = log_targets
        self.image_size = image_size
        self.n_members = n_members
        self.coverage = coverage
        self.augment = augment
        self.tta = tta
        self.bounded = bounded
        self.zeropoint = zeropoint
        self.pixel_scale = pixel_scale
        self.random_state = random_state
        self.verbose = verbose

    @fit_atomically
    def fit(self, X, y=None, sample_domain=None, sample_weight=None):
        """Train on source and target cutouts together.

        Parameters
        ----------
        X : cutouts
            Both domains' cutouts in any form `SersicCNNRegressor.fit`
            takes (read into memory).
        y : `~astropy.table.QTable` or array-like
            One label row per cutout; NaN rows for unlabelled targets.
            Source rows must be labelled.
        sample_domain : array-like of int, optional
            Positive for source (simulated), negative for target (real)
            rows.  Default: rows whose labels are all NaN are the target.
        sample_weight : array-like of shape (n,), optional
            Per-cutout weights of both losses.

        Returns
        -------
        self : AdversarialDARegressor

        Raises
        ------
        ValueError
            If a domain is missing or too small for a validation split stratified
            on domain, source rows are unlabelled, a parameter is out of range,
            or the inputs are malformed.  A failed (or interrupted) fit leaves
            the estimator as it was.
        TypeError
            If ``alignment`` is an object but not an
            `~astromorphnet.models.AlignmentLoss`.
        """
        stamps, labels, sw = self._validate_fit_inputs(X, y, sample_weight, allow_nan=True)
        target = check_sample_domain(sample_domain, labels)
        if not self.supervised:
            labels = np.where(target[:, None], np.nan, labels)  # never seen
        labelled = np.isfinite(labels).all(axis=1)
        labels[~labelled] = np.nan  # partly labelled targets are left out whole
        z = self._fit_preprocessing(stamps, labels)
        seed = self._seed()
        x, _ = self._read(stamps, 0, len(stamps))
        weight = np.ones(len(x), np.float32) if sw is None else sw
        outputs = {"sersic": np.nan_to_num(z).astype(np.float32),
                   "domain": target.astype(np.float32)[:, np.newaxis]}
        weights = {"sersic": weight * labelled, "domain": weight}
        self.model_ = self._build_model(z.shape[1])
        self._train(x, outputs, weights, target, seed)
        return self

    def _build_model(self, n_outputs):
        import keras

        from ..models import AlignmentLoss, build_aligned, get_alignment

        if not isinstance(self.alignment, (str, AlignmentLoss)):
            raise TypeError("alignment must be 'dann', 'coral', 'mmd' or an instance of "
                            "astromorphnet.models.AlignmentLoss; got an instance of "
                            f"{type(self.alignment).__name__}")
        self.alignment_ = get_alignment(self.alignment, units=tuple(self.domain_units),
                                        strength=self.reversal_strength,
                                        warmup=self.reversal_warmup)
        model = build_aligned(self._build_regressor(n_outputs), self.alignment_)
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate),
                      loss={"sersic": self._keras_loss(self.loss), "domain": self.alignment_},
                      loss_weights={"sersic": self.alpha, "domain": 1.0 - self.alpha},
                      metrics={"domain": list(self.alignment_.metrics)})
        return model

    def _train(self, x, outputs, weights, target, seed):
        from ._data import BalancedDomainSequence

        rows = np.arange(len(x))
        train, val = rows, rows[:0]
        if self.validation_fraction > 0:
            try:
                train, val = train_test_split(rows, test_size=self.validation_fraction,
                                              stratify=target, random_state=seed)
            except ValueError as error:
                raise ValueError(
                    f"cannot hold out a validation split stratified on domain ({error}): "
                    "give each domain more cutouts, or set validation_fraction=0") from None
        data = BalancedDomainSequence(x[train], _rows(outputs, train), _rows(weights, train),
                                      target[train], self.batch_size, seed)
        validation = None
        if len(val) and weights["sersic"][val].any():
            validation = (x[val], _rows(outputs, val), _rows(weights, val))
        monitor = "val_sersic_loss" if validation is not None else "sersic_loss"
        self._run_keras_fit(dict(x=data), validation, monitor, self.max_epochs, self.patience,
                            callbacks=self.alignment_.callbacks(self.model_, len(data)))

    def _network_predict(self, x):
        from ._base import forward

        return forward(self.model_, x)["sersic"]


def _rows(arrays, rows):
    return {key: value[rows] for key, value in arrays.items()}

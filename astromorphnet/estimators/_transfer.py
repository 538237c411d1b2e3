"""Transfer learning: a simulation-trained network fine-tuned on labelled real galaxies."""

import copy
import os
from numbers import Integral

import numpy as np
from sklearn.base import clone
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._input import as_stamps
from ..catalog._targets import TARGETS, check_targets, labels_to_array
from ..uncertainty import FAMILIES
from ._base import (BaseSersicRegressor, _check_not_blank, _check_sample_weight,
                    fit_atomically, load)
from ._domains import DomainScoreMixin, check_sample_domain
from ._sersic import SersicCNNRegressor

__all__ = ["TransferLearningRegressor"]

#: Fitted preprocessing state taken over from the pretrained estimator.
_ADOPTED = ("targets_", "log_targets_", "input_shape_", "unit_", "normalizer_",
            "target_scaler_", "label_range_", "_y_1d_", "likelihood_", "n_members_")


class TransferLearningRegressor(DomainScoreMixin, BaseSersicRegressor):
    """Fine-tune a simulation-trained Sérsic CNN on labelled target cutouts.

    The reference thesis's first cure for the domain shift (its section 4):
    start from a `SersicCNNRegressor` trained on simulations, then train its
    weights further, with a small learning rate, on real galaxies labelled
    by a classical fit (`astromorphnet.fitting.fit_sersic`, GALFIT, ...).
    The pixel stretch and target scaling of the pretrained estimator are
    kept, so the network sees its inputs and outputs as before, and so is
    its output link (``bounded``).  The pretrained estimator passed in is
    never modified.

    Parameters
    ----------
    pretrained : SersicCNNRegressor, `~sklearn.frozen.FrozenEstimator`, str or None
        A fitted `SersicCNNRegressor` (or `TransferLearningRegressor`), one
        wrapped in `~sklearn.frozen.FrozenEstimator` (survives `~sklearn.base.clone`,
        hence `~sklearn.model_selection.GridSearchCV`), or the path of one
        saved with ``save``.  An unfitted estimator (or None: a default
        `SersicCNNRegressor` with this estimator's ``zeropoint``,
        ``pixel_scale``, ``random_state`` and ``verbose``) is pretrained in
        `fit` on the source rows.
    trainable : {"all", "head"} or int, default="all"
        Layers that train: all (the reference thesis), the dense head only,
        or the last ``k`` convolution blocks plus the head
        (`~astromorphnet.models.freeze_layers`).
    learning_rate : float, default=1e-4
        Adam learning rate for fine-tuning.
    batch_size : int, default=8
        Fine-tuning batch size.
    max_epochs : int, default=15
        Fine-tuning epochs.
    patience : int, optional
        Early-stopping patience; default: never stop early.  The best epoch
        on the validation split is kept either way.
    validation_fraction : float, default=0.2
        Fraction of the target rows held out to choose the best epoch.
    loss : str or keras loss, optional
        Fine-tuning loss; default: the pretrained estimator's.  A network
        with a likelihood head (per-galaxy errors) fine-tunes with a
        likelihood (``"laplace"`` or ``"gaussian"``), a point network with a
        point loss.
    augment : bool, default=True
        Fine-tune on random flips and 90° rotations of the cutouts (see
        `SersicCNNRegressor`); a `~astromorphnet.models.RandomDihedral`
        layer is added to (or, when False, removed from) the copy of the
        pretrained network.
    tta : bool, default=False
        Test-time averaging over the eight flips and rotations (see
        `SersicCNNRegressor`).
    coverage : float, default=0.68
        Probability of the catalogs' central intervals (see
        `SersicCNNRegressor`).
    zeropoint, pixel_scale : optional
        For target cutouts whose meta, unit or WCS give none (see
        `SersicCNNRegressor`); ``zeropoint`` refers to pixels in the unit seen
        at fit time.
    random_state : int, `~numpy.random.RandomState` or None, default=None
        Seeds fine-tuning (and pretraining of a default estimator).
    verbose : int, default=0
        As for `SersicCNNRegressor`.

    Attributes
    ----------
    pretrained_ : SersicCNNRegressor
        The source-trained estimator fine-tuning started from (the object
        passed in, untouched, or the one pretrained by `fit`).
    model_ : `keras.Model`
        The fine-tuned network (a copy; the pretrained one is not modified).
    history_, n_epochs_ : dict, int
        Fine-tuning history.
    target_scaler_, normalizer_, input_shape_, unit_, targets_, label_range_
        Taken over from the pretrained estimator.
    likelihood_, n_members_
        The network head's likelihood family and ensemble size, as for
        `SersicCNNRegressor`.
    calibration_ : `~astromorphnet.uncertainty.ConformalCalibration`
        Set by `calibrate` (a pretrained estimator's calibration is not
        taken over: fine-tuning changes the network).
    saved_versions_ : dict or None
        Package versions of the session that saved this estimator (set by
        `load` or unpickling; None for files written before they were
        recorded); a refit drops it.

    See Also
    --------
    AdversarialDARegressor : adapt with unlabelled (or labelled) target galaxies.

    Notes
    -----
    ``fit(X, y, sample_domain=...)`` follows the domain-adaptation
    convention of `AdversarialDARegressor`: source rows (positive) pretrain an
    unfitted ``pretrained``; target rows (negative) with finite labels
    fine-tune.  Without ``sample_domain`` every row is a target row.

    Examples
    --------
    >>> from astromorphnet import SersicCNNRegressor, TransferLearningRegressor
    >>> from astromorphnet.simulation import simulate_galaxies
    >>> ranges = {"r_eff": (1.5, 6), "sersic_n": (0.5, 3)}
    >>> sims, truth = simulate_galaxies(48, stamp_size=32, ranges=ranges, random_state=0)
    >>> real, real_truth = simulate_galaxies(16, "GROUND_R", stamp_size=32, ranges=ranges,
    ...                                      random_state=1)
    >>> sim_only = SersicCNNRegressor(architecture="light", max_epochs=2, random_state=0,
    ...                               zeropoint=truth.meta["zeropoint"]).fit(sims, truth)
    >>> tl = TransferLearningRegressor(sim_only, max_epochs=2, random_state=0,
    ...                                zeropoint=real_truth.meta["zeropoint"])
    >>> tl.fit(real, real_truth).predict(real).colnames[:4]
    ['mag', 'mag_err', 'mag_lo', 'mag_hi']
    """

    _parameter_constraints = {
        **BaseSersicRegressor._parameter_constraints,
        "pretrained": [HasMethods(["fit", "predict"]), str, os.PathLike, None],
        "trainable": [StrOptions({"all", "head"}), Interval(Integral, 0, None, closed="left")],
        "patience": [Interval(Integral, 0, None, closed="left"), None],
        "loss": [str, callable, None],
    }

    def __init__(self, pretrained=None, *, trainable="all", learning_rate=1e-4, batch_size=8,
                 max_epochs=15, patience=None, validation_fraction=0.2, loss=None,
                 augment=True, tta=False, coverage=0.68, zeropoint=None, pixel_scale=None,
                 random_state=None, verbose=0):
        self.pretrained = pretrained
        self.trainable = trainable
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.loss = loss
        self.augment = augment
        self.tta = tta
        self.coverage = coverage
        self.zeropoint = zeropoint
        self.pixel_scale = pixel_scale
        self.random_state = random_state
        self.verbose = verbose

    @fit_atomically
    def fit(self, X, y=None, sample_domain=None, sample_weight=None):
        """Fine-tune (pretraining first if needed) on labelled target cutouts.

        Parameters
        ----------
        X : cutouts
            Any form `SersicCNNRegressor.fit` takes.
        y : `~astropy.table.QTable` or array-like
            One label row per cutout; target rows with NaN labels are skipped.
            Optional for a `~astromorphnet.simulation.SimulatedDataset`.
        sample_domain : array-like of int, optional
            Positive for source rows (used only to pretrain an unfitted
            ``pretrained``), negative for target rows.  Default: all target.
        sample_weight : array-like of shape (n,), optional
            Per-cutout loss weights.

        Returns
        -------
        self : TransferLearningRegressor

        Raises
        ------
        ValueError
            If ``pretrained`` is unfitted and there are no source rows, if no
            labelled target row is given, or on malformed input.
        TypeError
            If ``pretrained`` is not a Sérsic CNN estimator.
        """
        base, fitted = self._pretrained_estimator()
        targets = base.targets_ if fitted else check_targets(base.targets)
        if y is None:
            y = getattr(X, "truth", None)
        if y is None:
            raise ValueError("TransferLearningRegressor requires y to be passed, but the "
                             "target y is None")
        stamps = as_stamps(X, pixel_scale=self.pixel_scale, zeropoint=self.zeropoint)
        labels = labels_to_array(y, targets, pixel_scale=stamps.pixel_scale, allow_nan=True)
        if len(labels) != len(stamps):
            raise ValueError(f"X has {len(stamps)} cutouts but y has {len(labels)} label "
                             "rows; give exactly one label row per cutout")
        target = (np.ones(len(labels), bool) if sample_domain is None
                  else check_sample_domain(sample_domain, labels, require_both=False))
        if not fitted:
            source = np.flatnonzero(~target)
            if not len(source):
                raise ValueError(
                    "the pretrained estimator is not fitted and there are no source rows to "
                    "pretrain it on: pass a fitted SersicCNNRegressor (wrapped in "
                    "sklearn.frozen.FrozenEstimator to survive clone()/GridSearchCV) or a "
                    "saved path, or source rows with sample_domain > 0")
            # Source cutouts are read with the pretraining estimator's defaults.
            source_stamps = as_stamps(X, pixel_scale=base.pixel_scale, zeropoint=base.zeropoint)
            base = clone(base).fit(source_stamps.take(source), labels[source])
        rows = np.flatnonzero(target & np.isfinite(labels).all(axis=1))
        if not len(rows):
            raise ValueError("no labelled target rows to fine-tune on: give target cutouts "
                             "finite labels (e.g. from astromorphnet.fitting.fit_sersic)")
        self.pretrained_ = base
        for name in _ADOPTED:
            setattr(self, name, copy.deepcopy(getattr(base, name)))
        if self.loss is not None:
            if (self.loss in FAMILIES) != (self.likelihood_ is not None):
                raise ValueError(
                    f"loss={self.loss!r} does not fit the pretrained network, whose head "
                    + (f"is a {self.likelihood_} likelihood: fine-tune it with one of "
                       f"{sorted(FAMILIES)}" if self.likelihood_ else
                       "gives point estimates: fine-tune it with a point loss")
                    + " (or leave loss=None)")
            self._set_head(self.loss if self.likelihood_ else None, self.n_members_)
        tuned = stamps.take(rows).convert_to(self.unit_)
        _check_not_blank(tuned)
        z = self.target_scaler_.transform(self._encode(labels[rows], tuned))
        sw = _check_sample_weight(sample_weight, len(labels))
        seed = self._seed()
        self.model_ = self._fine_tuning_model(base)
        self._keras_fit(tuned, z, None if sw is None else sw[rows], seed,
                        patience=self.max_epochs if self.patience is None else self.patience)
        return self

    def _pretrained_estimator(self):
        """``(estimator, is_fitted)`` for ``pretrained``."""
        from sklearn.frozen import FrozenEstimator

        base = self.pretrained
        if base is None:
            return SersicCNNRegressor(zeropoint=self.zeropoint, pixel_scale=self.pixel_scale,
                                      random_state=self.random_state,
                                      verbose=self.verbose), False
        if isinstance(base, (str, os.PathLike)):
            base = load(base)
        if isinstance(base, FrozenEstimator):
            base = base.estimator
        if not isinstance(base, (SersicCNNRegressor, TransferLearningRegressor)):
            raise TypeError(f"pretrained must be a SersicCNNRegressor (fitted or not), a "
                            f"saved one's path, or None; got {type(base).__name__}")
        try:
            check_is_fitted(base)
        except Exception:  # NotFittedError, or a clone without fitted state
            return base, False
        return base, True

    def _declared_targets(self):
        base = self.pretrained
        base = getattr(base, "estimator", base)  # FrozenEstimator
        return check_targets(getattr(base, "targets", TARGETS))

    def _fine_tuning_model(self, base):
        """A fresh copy of the pretrained network, partly frozen and compiled."""
        import keras

        from ..models import freeze_layers

        model = keras.models.clone_model(base.model_)
        model.set_weights(base.model_.get_weights())
        model = self._with_augmentation(model)
        freeze_layers(model, self.trainable)
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate),
                      loss=self._keras_loss(self.loss or _training_loss(base)))
        return model


def _training_loss(estimator):
    """The loss a fitted estimator's network was trained with."""
    if isinstance(estimator, TransferLearningRegressor):
        return estimator.loss or _training_loss(estimator.pretrained_)
    return estimator.loss

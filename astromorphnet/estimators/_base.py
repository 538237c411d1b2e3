"""Machinery shared by every astromorphnet estimator (the scikit-learn layer).

Keras is imported inside methods only, so that ``import astromorphnet`` and
building/cloning estimators stay cheap.
"""

import contextlib
import functools
import hashlib
import inspect
import random
import time
import weakref
from numbers import Integral, Real

import astropy.units as u
import numpy as np
from astropy.table import Table
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.metrics import r2_score
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._input import as_stamps
from .._progress import keras_verbose
from ..catalog._flags import SersicFlag
from ..catalog._targets import (PHYSICAL_RANGES, TARGETS, check_targets, labels_to_array,
                                make_catalog, require_zeropoint)
from ..preprocessing import ImageNormalizer
from ..uncertainty import FAMILIES, ConformalCalibration, SersicDistribution
from ..uncertainty._conformal import DomainDensityRatio, warn_if_few

__all__ = ["BaseSersicRegressor", "fit_atomically", "load"]

#: Cutouts read and preprocessed at a time by ``predict`` (bounds its memory).
PREDICT_CHUNK = 4096
#: Batch size of the network's forward pass in ``predict``.
PREDICT_BATCH = 256
#: On-disk training sets whose network input exceeds this many bytes stream
#: from disk instead of being loaded.  Loading holds the input about three
#: times (read, stretched, train/validation copies), so this bounds the
#: extra memory of a fit to ~1.5 GiB.
IN_MEMORY_LIMIT = 2**29
_OUTPUTS = ("catalog", "array")
#: A bounded network's locations may exceed the training labels' range by
#: this fraction of its span (in the regressed space) on either side.
BOUND_MARGIN = 0.05
#: Targets bounded by their whole physical range (`PHYSICAL_RANGES`), not by
#: the training labels: any axis ratio is a galaxy's, and simulations often
#: draw a narrower range than real galaxies have.
PHYSICALLY_BOUNDED = ("ellipticity",)
#: How estimators saved before a parameter existed were trained, where that
#: differs from the parameter's default: such files load with these values,
#: so that their parameters describe their networks (the others load with
#: their defaults, which reproduce the older behaviour).
_BEFORE_PARAMETER = {"augment": False, "bounded": False}
#: Two-output views (regression, features) of fitted networks, built once
#: per network and never pickled with the estimator.
_FEATURE_MODELS = weakref.WeakKeyDictionary()

#: Constraints of the parameters that define a network of its own
#: (`SersicCNNRegressor`, `AdversarialDARegressor`; a fine-tuned network
#: inherits them from its pretrained estimator).
NETWORK_CONSTRAINTS = {
    "architecture": [str, callable],
    "targets": [str, list, tuple],
    "patience": [Interval(Integral, 0, None, closed="left")],
    "loss": [str, callable],
    "normalization": [StrOptions({"asinh", "linear"}), ImageNormalizer, None],
    "log_targets": [str, list, tuple],
    "image_size": [Interval(Integral, 1, None, closed="left"), list, tuple, None],
    "n_members": [Interval(Integral, 1, None, closed="left")],
    "bounded": ["boolean"],
}


def fit_atomically(fit):
    """Decorate an estimator's ``fit``: validate parameters, then train aside.

    The decorated ``fit`` runs on a copy of the estimator without its fitted
    state; only when it returns is that new state attached, in one step.  A
    fit that fails or is interrupted (an error, ``KeyboardInterrupt``)
    leaves a fitted estimator exactly as it was: its network, scalers and
    ``model_id_`` always belong together.  The global Python and NumPy
    random generators, which Keras seeds, are restored afterwards.

    Parameters
    ----------
    fit : callable
        The estimator's ``fit(self, X, ...)``, setting fitted attributes
        (names ending in ``_``) on ``self``.

    Returns
    -------
    fit : callable
        The wrapped ``fit``, same signature (metadata routing sees it), which
        validates ``_parameter_constraints`` first and returns the estimator.

    Examples
    --------
    >>> import numpy as np
    >>> from astromorphnet import SersicCNNRegressor
    >>> reg = SersicCNNRegressor("light", targets=("ellipticity",), loss="no_such_loss")
    >>> try:
    ...     reg.fit(np.random.default_rng(0).normal(size=(8, 16, 16)), np.full(8, 0.3))
    ... except ValueError:
    ...     pass
    >>> hasattr(reg, "model_")   # nothing half-fitted is left behind
    False
    """
    @functools.wraps(fit)
    def wrapper(self, *args, **kwargs):
        self._validate_params()
        unfitted = {key: value for key, value in self.__dict__.items()
                    if not _is_fitted_attribute(key)}
        work = object.__new__(type(self))
        work.__dict__.update(unfitted)
        with _global_random_state_kept():
            fit(work, *args, **kwargs)
        self.__dict__ = {**unfitted, **{key: value for key, value in work.__dict__.items()
                                         if _is_fitted_attribute(key)}}
        return self
    return wrapper


def _is_fitted_attribute(name):
    # scikit-learn's convention: learned state ends in "_" (private ones too).
    return name.endswith("_") and not name.endswith("__")


@contextlib.contextmanager
def _global_random_state_kept():
    """Restore Python's and NumPy's global generators (which Keras reseeds)."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


class BaseSersicRegressor(RegressorMixin, BaseEstimator):
    """Base class: cutouts in, Sérsic catalog out.

    Subclasses write ``__init__`` (parameters only) and ``fit`` from the
    steps here (``_validate_fit_inputs``, ``_fit_preprocessing``, ``_seed``,
    ``_read``, ``_build_model``, ``_keras_fit``); prediction, units, flags,
    catalogs, scoring, the output switch and persistence are shared.  An
    estimator counts as fitted once its training has finished.

    Examples
    --------
    >>> from astromorphnet.estimators import BaseSersicRegressor, SersicCNNRegressor
    >>> issubclass(SersicCNNRegressor, BaseSersicRegressor)
    True
    >>> SersicCNNRegressor().__sklearn_tags__().target_tags.multi_output
    True
    """

    #: Constraints of the parameters every estimator has; subclasses merge
    #: theirs in (scikit-learn's ``_parameter_constraints``).
    _parameter_constraints = {
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "zeropoint": [Interval(Real, None, None, closed="neither"), None],
        "pixel_scale": [Interval(Real, 0, None, closed="neither"), u.Quantity, None],
        "coverage": [Interval(Real, 0, 1, closed="neither")],
        "augment": ["boolean"],
        "tta": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # -- fitting ---------------------------------------------------------
    def _validate_fit_inputs(self, X, y, sample_weight=None, allow_nan=False):
        """Check the data; return ``(stamps, labels, sample_weight)``."""
        self.targets_ = check_targets(self.targets)
        log_targets = ((self.log_targets,) if isinstance(self.log_targets, str)
                       else tuple(self.log_targets))
        unknown = set(log_targets) - set(TARGETS)
        if unknown:
            raise ValueError(f"log_targets {sorted(unknown)} are not Sérsic parameters; "
                             f"choose among {TARGETS}")
        self.log_targets_ = tuple(t for t in self.targets_ if t in log_targets)
        self._set_head(self.loss, self.n_members)
        if y is None:
            y = getattr(X, "truth", None)  # a simulated set carries its labels
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the "
                             "target y is None")
        stamps = as_stamps(X, pixel_scale=self.pixel_scale, zeropoint=self.zeropoint)
        labels = labels_to_array(y, self.targets_, pixel_scale=stamps.pixel_scale,
                                 allow_nan=True)
        if not allow_nan and np.isnan(labels).any():
            rows = np.flatnonzero(np.isnan(labels).any(axis=1))
            raise ValueError(
                f"y contains NaN in {len(rows)} row(s) (first: {rows[:5].tolist()}): "
                f"{type(self).__name__} trains on labelled galaxies only; drop those "
                "rows, or adapt to unlabelled ones with AdversarialDARegressor("
                "supervised=False)")
        if len(labels) != len(stamps):
            raise ValueError(
                f"X has {len(stamps)} cutouts but y has {len(labels)} label rows; "
                "give exactly one label row per cutout")
        _check_not_blank(stamps)
        self._y_1d_ = not isinstance(y, Table) and np.asarray(y).ndim == 1
        return stamps, labels, _check_sample_weight(sample_weight, len(labels))

    def _set_head(self, loss, n_members):
        """Record the network head: its likelihood family (or None) and ensemble size."""
        self.likelihood_ = loss if isinstance(loss, str) and loss in FAMILIES else None
        if n_members > 1 and self.likelihood_ is None:
            raise ValueError(f"an ensemble (n_members={n_members}) needs a likelihood loss, "
                             f"one of {sorted(FAMILIES)}, to combine its members' "
                             f"uncertainties; got loss={loss!r}")
        self.n_members_ = int(n_members)

    def _member_width(self, n_targets):
        """Outputs of one network: a location (and a log-scale) per target."""
        return n_targets * (1 if self.likelihood_ is None else 2)

    def _keras_loss(self, loss):
        """The Keras loss for ``loss`` (a likelihood name becomes its loss object)."""
        from ..models import LIKELIHOODS

        return LIKELIHOODS[loss]() if isinstance(loss, str) and loss in LIKELIHOODS else loss

    def _fit_preprocessing(self, stamps, labels):
        """Learn input shape, unit, normaliser and target scaler."""
        self.input_shape_ = self._input_shape(stamps)
        self.unit_ = stamps.unit
        self.normalizer_ = self._make_normalizer()
        if self.normalizer_ is not None:
            self.normalizer_.fit(stamps, shape=self.input_shape_)
        z = self._encode(labels, stamps)
        self.target_scaler_ = StandardScaler().fit(z)
        self.label_range_ = (np.nanmin(labels, axis=0), np.nanmax(labels, axis=0))
        self._network_bounds_ = self._output_bounds(z)
        return self.target_scaler_.transform(z)

    def _output_bounds(self, z):
        """Per-target ``(low, high)`` of a bounded network, in its scaled regressed space.

        ``z``: the encoded (unscaled) training labels.  Ellipticity is bounded
        by its physical range; the others by the training range widened by
        `BOUND_MARGIN` of its span, inside their physical range.  Both ends
        are then pulled in by 0.1 % of the span, because the float32 link
        reaches its limits exactly and an open end (ellipticity 1) must stay
        out of reach.
        """
        low, high = np.nanmin(z, axis=0), np.nanmax(z, axis=0)
        span = high - low
        # A constant label: one unit (mag, dex) either side.
        margin = np.where(span > 0, BOUND_MARGIN * span, 1.0)
        low, high = low - margin, high + margin
        for j, name in enumerate(self.targets_):
            physical = np.array(PHYSICAL_RANGES[name][:2], np.float64)
            if name in self.log_targets_:
                with np.errstate(divide="ignore"):
                    physical = np.log10(physical)
            if name in PHYSICALLY_BOUNDED and np.isfinite(physical).all():
                low[j], high[j] = physical
            else:
                low[j], high[j] = np.fmax(low[j], physical[0]), np.fmin(high[j], physical[1])
        inset = 1e-3 * (high - low)
        scaler = self.target_scaler_
        return (((low + inset - scaler.mean_) / scaler.scale_).tolist(),
                ((high - inset - scaler.mean_) / scaler.scale_).tolist())

    def _input_shape(self, stamps):
        if self.image_size is None:
            return stamps.shapes[0]
        shape = ((self.image_size,) * 2 if np.isscalar(self.image_size)
                 else tuple(self.image_size))
        if len(shape) != 2 or not all(int(s) == s and s > 0 for s in shape):
            raise ValueError(f"image_size must be a positive int or (ny, nx); "
                             f"got {self.image_size!r}")
        return tuple(int(s) for s in shape)

    def _make_normalizer(self):
        norm = self.normalization
        if norm is None:
            return None
        # "asinh"/"linear" or an ImageNormalizer (_parameter_constraints).
        return ImageNormalizer(stretch=norm) if isinstance(norm, str) else clone(norm)

    def _encode(self, labels, stamps):
        """Labels (catalog units) of ``stamps`` -> the space the network regresses."""
        z = labels.copy()
        for j, name in enumerate(self.targets_):
            if name == "mag":
                # Only magnitudes need (and read) the cutouts' zeropoints.
                z[:, j] = labels[:, j] - require_zeropoint(stamps.zeropoint)
            if name in self.log_targets_:
                values = labels[:, j]
                if np.any(values[np.isfinite(values)] <= 0):
                    raise ValueError(f"{name} labels must be > 0 to be regressed in log "
                                     "space; fix them or drop it from log_targets")
                z[:, j] = np.log10(values)
        return z

    def _decode(self, z, zeropoint):
        """Scaled network space -> catalog units (monotonically increasing, inf-safe)."""
        scaler = self.target_scaler_
        encoded = z * scaler.scale_ + scaler.mean_
        labels = encoded.copy()
        for j, name in enumerate(self.targets_):
            if name in self.log_targets_:
                labels[:, j] = 10.0 ** encoded[:, j]
            if name == "mag":
                labels[:, j] = encoded[:, j] + zeropoint
        return labels

    def _read(self, stamps, start, stop):
        """Network input for cutouts ``start:stop`` and their flags."""
        batch = stamps.read(start, stop, self.input_shape_)
        data = batch.data if self.normalizer_ is None else self.normalizer_.apply(batch.data)
        return data[..., np.newaxis], batch.flag

    def _seed(self):
        """Seed Keras (Python, NumPy and backend RNGs) from ``random_state``."""
        import keras

        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        keras.utils.set_random_seed(seed)
        return seed

    def _build_regressor(self, n_targets):
        """The (uncompiled) regression network: ``architecture``, its head, its members.

        Each member ends in the bounded link when ``bounded``; the input
        passes a `~astromorphnet.models.RandomDihedral` layer when ``augment``.
        """
        from ..models import bounded_builder, build_ensemble, get_architecture

        builder = get_architecture(self.architecture)
        if self.bounded:
            builder = bounded_builder(builder, *self._network_bounds_)
        builder = build_ensemble(builder, self.n_members_)
        return self._with_augmentation(
            builder(self.input_shape_ + (1,), self._member_width(n_targets)))

    def _with_augmentation(self, model):
        """``model`` with a `~astromorphnet.models.RandomDihedral` input layer iff ``augment``."""
        from ..models import with_random_dihedral

        return with_random_dihedral(model, self.augment)

    def _build_model(self, n_targets):
        """Build and compile the network chosen by ``architecture``."""
        import keras

        model = self._build_regressor(n_targets)
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate),
                      loss=self._keras_loss(self.loss))
        return model

    def _split(self, n, seed):
        """Train/validation row indices (validation may be empty)."""
        order = np.random.default_rng(seed).permutation(n)
        n_val = int(round(self.validation_fraction * n))
        if n_val == 0 or n_val == n:
            return order, order[:0]
        return order[n_val:], order[:n_val]

    def _stream_arrays(self, stream, epoch):
        """Network input and scaled labels of a `SimulationStream`'s ``epoch``."""
        stamps, labels = self._stream_set(stream, epoch)
        x, _ = self._read(stamps, 0, len(stamps))
        z = self.target_scaler_.transform(self._encode(labels, stamps))
        return x, z.astype(np.float32)

    def _stream_set(self, stream, epoch):
        """``(stamps, labels)`` of a stream's epoch, at the survey's zeropoint by default."""
        from astropy.nddata import NDData

        images, truth = stream.epoch(epoch)
        zeropoint = stream.survey.zeropoint if self.zeropoint is None else self.zeropoint
        stamps = as_stamps(NDData(images, meta={"MAGZERO": zeropoint}),
                           pixel_scale=self.pixel_scale, zeropoint=self.zeropoint)
        targets = getattr(self, "targets_", None) or check_targets(self.targets)
        return stamps, labels_to_array(truth, targets, pixel_scale=stamps.pixel_scale)

    def _keras_fit(self, stamps, z, sample_weight, seed, epochs=None, batch_size=None,
                   patience=None, stream=None):
        """``model_.fit`` with early stopping on a validation split.

        In-memory cutouts are preprocessed once into arrays; on-disk sets
        larger than `IN_MEMORY_LIMIT` bytes stream in contiguous blocks
        (`~astromorphnet.estimators._data.BlockSequence`), so memory stays bounded.  ``sample_weight`` is the
        validated float32 array from ``_validate_fit_inputs``, or None.  With
        a ``stream`` (`~astromorphnet.simulation.SimulationStream`, whose
        epoch 0 is ``stamps``), every later epoch trains on fresh galaxies
        (`~astromorphnet.estimators._data.StreamSequence`) and validates on
        epoch 0's validation rows.
        """
        batch_size = batch_size or self.batch_size
        epochs = self.max_epochs if epochs is None else epochs
        patience = self.patience if patience is None else patience
        n = len(stamps)
        nbytes = n * int(np.prod(self.input_shape_)) * 4
        if stamps.on_disk and nbytes > IN_MEMORY_LIMIT:
            from ._data import BlockSequence, block_split

            train, val = block_split(n, batch_size, self.validation_fraction, seed)
            data = BlockSequence(self, stamps, z, sample_weight, train, shuffle=seed)
            validation = BlockSequence(self, stamps, z, sample_weight, val) if val else None
            fit_args = dict(x=data)
        else:
            x, _ = self._read(stamps, 0, n)
            train, val = self._split(n, seed)
            sw = sample_weight
            validation = None
            if len(val):
                validation = (x[val], z[val]) if sw is None else (x[val], z[val], sw[val])
            fit_args = dict(x=x[train], y=z[train], batch_size=batch_size, shuffle=True,
                            sample_weight=None if sw is None else sw[train])
            if stream is not None:
                from ._data import StreamSequence

                fit_args = dict(x=StreamSequence(self, stream, x[train],
                                                 z[train].astype(np.float32), batch_size,
                                                 seed))
        monitor = "val_loss" if validation is not None else "loss"
        self._run_keras_fit(fit_args, validation, monitor, epochs, patience)

    def _run_keras_fit(self, fit_args, validation, monitor, epochs, patience, callbacks=()):
        """``model_.fit`` keeping the best epoch of ``monitor``; sets ``history_``."""
        import keras

        stop = keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, mode="min",
                                             restore_best_weights=True)
        start = time.perf_counter()
        history = self.model_.fit(**fit_args, validation_data=validation, epochs=epochs,
                                  callbacks=[stop, *callbacks],
                                  verbose=keras_verbose(self.verbose))
        self.history_ = history.history
        self.model_id_ = _weights_digest(self.model_)
        # Set last: an estimator counts as fitted (__sklearn_is_fitted__) only
        # once training has finished.
        self.n_epochs_ = len(history.epoch)
        if self.verbose:
            best = int(np.argmin(self.history_[monitor]))
            print(f"{type(self).__name__}: {self.n_epochs_} epochs in "
                  f"{time.perf_counter() - start:.1f} s, best {monitor} "
                  f"{self.history_[monitor][best]:.4g} at epoch {best + 1}")

    # -- prediction --------------------------------------------------------
    def _predict_raw(self, X, features=False):
        """Network outputs (and features) for cutouts, their flags and stamps."""
        check_is_fitted(self)
        stamps = as_stamps(X, pixel_scale=self.pixel_scale, zeropoint=self.zeropoint)
        stamps.convert_to(self.unit_)
        if "mag" in self.targets_:
            require_zeropoint(stamps.zeropoint)
        n = len(stamps)
        raw, feats = [], []
        flag = np.empty(n, np.int64)
        progbar = None
        if self.verbose and n > PREDICT_CHUNK:
            import keras

            progbar = keras.utils.Progbar(n, unit_name="cutout",
                                          verbose=keras_verbose(self.verbose))
        for start in range(0, n, PREDICT_CHUNK):
            stop = min(start + PREDICT_CHUNK, n)
            x, flag[start:stop] = self._read(stamps, start, stop)
            if features:
                out, feat = self._network_predict_features(x)
                feats.append(feat.reshape(len(x), -1))
            if self.tta:
                out = self._average_views(x)  # features stay those of x itself
            elif not features:
                out = self._network_predict(x)
            raw.append(np.asarray(out, np.float64))
            if progbar is not None:
                progbar.update(stop)
        return np.concatenate(raw), (np.concatenate(feats) if features else None), flag, stamps

    def _average_views(self, x):
        """Network outputs for ``x`` averaged over its eight flips/rotations.

        A point network's outputs are averaged; a likelihood head's views
        become members, side by side, which `_combine_members` moment-matches
        as an ensemble's, so errors include the spread over views.
        """
        from keras import ops

        from ..models import dihedral_transforms, n_symmetries

        n_views = n_symmetries(x.shape)
        step = max(PREDICT_CHUNK // n_views, 1)  # all views of a chunk: memory as without
        views = []
        for start in range(0, len(x), step):
            part = x[start:start + step]
            stacked = np.concatenate([ops.convert_to_numpy(view)
                                      for view in dihedral_transforms(part)])
            out = np.asarray(self._network_predict(stacked), np.float64)
            views.append(out.reshape(n_views, len(part), -1))
        views = np.concatenate(views, axis=1)
        if getattr(self, "likelihood_", None) is None:
            return views.mean(axis=0)
        return np.concatenate(list(views), axis=1)

    def _loc_scale(self, raw):
        """``(loc, scale, family)`` in the scaled regressed space, from network outputs."""
        likelihood = getattr(self, "likelihood_", None)  # None: files saved before heads
        if likelihood is None:
            return raw, np.ones_like(raw), None  # a point network: unit scales
        from keras import ops

        from ..models import split_outputs

        loc, log_scale = (ops.convert_to_numpy(part).astype(np.float64)
                          for part in split_outputs(raw, len(self.targets_)))
        return _combine_members(loc, np.exp(np.clip(log_scale, -12.0, 12.0)), likelihood)

    def _distribution(self, raw, stamps, features=None):
        """The `SersicDistribution` of network outputs ``raw``."""
        calibration = getattr(self, "calibration_", None)
        loc, scale, family = self._loc_scale(raw)
        weights = None
        if calibration is not None and calibration.weighted:
            weights = calibration.density_ratio(features)
        return SersicDistribution(self.targets_, loc, scale, family,
                                  functools.partial(self._decode, zeropoint=stamps.zeropoint),
                                  calibration=calibration, weights=weights)

    def _has_uncertainty(self):
        return (getattr(self, "likelihood_", None) is not None
                or getattr(self, "calibration_", None) is not None)

    def _predict(self, X):
        """``(distribution, flag, stamps)`` of cutouts, with the OUT_OF_RANGE flag set."""
        calibration = getattr(self, "calibration_", None)
        weighted = calibration is not None and calibration.weighted
        raw, features, flag, stamps = self._predict_raw(X, features=weighted)
        distribution = self._distribution(raw, stamps, features)
        low, high = self.label_range_
        labels = distribution.median
        outside = ((labels < low) | (labels > high)).any(axis=1)
        flag[outside] |= SersicFlag.OUT_OF_RANGE
        return distribution, flag, stamps

    def predict(self, X):
        """Measure the Sérsic parameters of cutouts, with their uncertainties.

        Parameters
        ----------
        X : cutouts
            A list of 2-D `~astropy.nddata.NDData`/`~astropy.nddata.CCDData`,
            one 3-D `~astropy.nddata.NDData`, or an array ``(n, ny, nx)``.
            Pixels must be in the unit seen at fit time (or convertible to it).

        Returns
        -------
        catalog : `~astropy.table.QTable` or `~numpy.ndarray`
            By default a catalog with one row per cutout: each target with
            its unit (``mag`` in ABmag, ``r_eff`` in pix and, where the pixel
            scale is known, ``r_eff_arcsec``), followed, when the estimator
            gives uncertainties (a likelihood ``loss``, or after
            `calibrate`), by ``<target>_err`` (1σ: half the central 68.27 %
            interval; ``mag_err`` in mag) and ``<target>_lo``/``<target>_hi``
            (the central interval of probability ``coverage``); then
            ``flag`` (`~astromorphnet.catalog.SersicFlag` bits) and
            provenance ``meta`` (with ``coverage`` and ``calibrated``).
            After ``set_output(predict="array")``, an array of point
            estimates shaped like the training ``y``.

        Raises
        ------
        astropy.units.UnitsError
            If the pixel unit does not match the one seen at fit time.
        sklearn.exceptions.NotFittedError
            If called before ``fit``.
        """
        distribution, flag, stamps = self._predict(X)
        labels = distribution.median
        if self._output_kind() == "array":
            return labels[:, 0] if self._y_1d_ else labels
        meta = self._catalog_meta()
        uncertainty = None
        if self._has_uncertainty():
            uncertainty = (distribution.error, *distribution.interval(self.coverage))
            meta.update(coverage=self.coverage, calibrated=distribution.calibrated)
        return make_catalog(labels, self.targets_, flag=flag, uncertainty=uncertainty,
                            pixel_scale=stamps.pixel_scale, meta=meta)

    def predict_distribution(self, X):
        """Per-galaxy predictive distributions, for intervals at any coverage.

        Parameters
        ----------
        X : cutouts
            As for `predict`.

        Returns
        -------
        distribution : `~astromorphnet.uncertainty.SersicDistribution`
            ``median`` (point estimates), ``error`` (1σ) and
            ``interval(coverage)``, in catalog units, for every cutout; the
            network runs once.

        Raises
        ------
        ValueError
            If the estimator gives no uncertainties: trained with a point
            loss (such as ``"mae"``) and not calibrated.
        sklearn.exceptions.NotFittedError
            If called before ``fit``.
        """
        check_is_fitted(self)
        if not self._has_uncertainty():
            raise ValueError(
                f"this {type(self).__name__} gives no uncertainties: it was trained with "
                f"loss={self.loss!r}, a point loss; train it with a likelihood loss "
                f"({', '.join(map(repr, sorted(FAMILIES)))}) or calibrate() it on labelled "
                "galaxies")
        return self._predict(X)[0]

    def calibrate(self, X, y=None, sample_domain=None):
        """Calibrate the uncertainties on galaxies of the domain to be measured.

        Conformal prediction (`~astromorphnet.uncertainty.ConformalCalibration`):
        the normalised residuals of calibration galaxies set, per parameter,
        how wide an interval must be to reach its stated coverage.

        * Labelled target galaxies (no ``sample_domain``, or rows with
          ``sample_domain < 0`` and finite labels): split-conformal scaling;
          the stated coverage then holds on galaxies like them.  Use
          galaxies the network was not trained on.
        * Unlabelled target galaxies: give labelled source galaxies (held-out
          simulations, ``sample_domain > 0``) and unlabelled target ones
          (``sample_domain < 0``, NaN labels).  A domain classifier on the
          network's features weighs the source residuals by the density
          ratio target/source (weighted conformal prediction under covariate
          shift, Tibshirani et al. 2019).

        Works for every estimator, after any training; a point-loss network
        gets intervals of constant width in its regressed space.  A refit
        drops the calibration; `save` keeps it.

        Parameters
        ----------
        X : cutouts
            Calibration cutouts, in any form `predict` takes.
        y : `~astropy.table.QTable` or array-like, optional
            Their labels (NaN rows for unlabelled target galaxies); optional
            for a `~astromorphnet.simulation.SimulatedDataset`.
        sample_domain : array-like of int, optional
            Positive for source, negative for target rows (the convention of
            `AdversarialDARegressor`).  Default: all rows are target.

        Returns
        -------
        self
            The estimator, with ``calibration_`` set.

        Raises
        ------
        ValueError
            If there are no labelled calibration galaxies, or (weighted case)
            no unlabelled target ones; on malformed input.
        sklearn.exceptions.NotFittedError
            If called before ``fit``.

        Warns
        -----
        astropy.utils.exceptions.AstropyUserWarning
            If the (effective) number of calibration galaxies is too small
            for reliable 95 % intervals.
        """
        from ._domains import check_sample_domain

        check_is_fitted(self)
        if y is None:
            y = getattr(X, "truth", None)
        if y is None:
            raise ValueError("calibrate needs the calibration galaxies' labels y")
        raw, features, _, stamps = self._predict_raw(X, features=sample_domain is not None)
        labels = labels_to_array(y, self.targets_, pixel_scale=stamps.pixel_scale,
                                 allow_nan=True)
        if len(labels) != len(stamps):
            raise ValueError(f"X has {len(stamps)} cutouts but y has {len(labels)} label "
                             "rows; give exactly one label row per cutout")
        target = (np.ones(len(labels), bool) if sample_domain is None
                  else check_sample_domain(sample_domain, labels, require_both=False))
        labelled = np.isfinite(labels).all(axis=1)
        source_rows = np.flatnonzero(~target & labelled)
        target_rows = np.flatnonzero(target & labelled)
        weights = density_ratio = None
        if len(target_rows):
            rows = target_rows  # labelled target galaxies: plain split conformal
        elif len(source_rows) and target.any():
            rows = source_rows
            density_ratio = DomainDensityRatio(random_state=self.random_state).fit(
                features[source_rows], features[target])
            weights = density_ratio(features[source_rows])
        else:
            raise ValueError("calibrate needs labelled target galaxies, or labelled source "
                             "and unlabelled target galaxies (sample_domain > 0 and < 0)")
        true = self.target_scaler_.transform(self._encode(labels[rows], stamps.take(rows)))
        loc, scale, _ = self._loc_scale(raw[rows])
        calibration = ConformalCalibration(np.abs(true - loc) / scale, weights, density_ratio)
        warn_if_few(calibration)
        self.calibration_ = calibration
        return self

    def _catalog_meta(self):
        return {"estimator": type(self).__name__, "model": self.model_.name,
                "model_id": self.model_id_, "n_epochs": self.n_epochs_}

    def _network_predict(self, x):
        """Network outputs for preprocessed cutouts (scaled targets, log-scales)."""
        return forward(self.model_, x)

    def _network_predict_features(self, x):
        """Network outputs and the ``"features"`` layer's output."""
        import keras

        from ..models import feature_layer

        model = _FEATURE_MODELS.get(self.model_)
        if model is None:
            output = self.model_.output
            output = output["sersic"] if isinstance(output, dict) else output
            model = keras.Model(self.model_.inputs, [output, feature_layer(self.model_).output])
            _FEATURE_MODELS[self.model_] = model
        return forward(model, x)

    def score(self, X, y, sample_weight=None):
        """Mean coefficient of determination R² over the target parameters.

        Parameters
        ----------
        X : cutouts
            As for `predict`.
        y : `~astropy.table.QTable` or array-like
            True labels, as for ``fit``.
        sample_weight : array-like, optional
            Per-cutout weights.

        Returns
        -------
        score : float
            `sklearn.metrics.r2_score` averaged uniformly over the targets
            (per-target values: `astromorphnet.metrics.r2_table`).
        """
        distribution, _, stamps = self._predict(X)
        true = labels_to_array(y, self.targets_,
                               pixel_scale=stamps.pixel_scale)
        return r2_score(true, distribution.median, sample_weight=sample_weight)

    # -- output switch -----------------------------------------------------
    def set_output(self, *, predict=None):
        """Choose what `predict` returns (scikit-learn ``set_output`` style).

        Parameters
        ----------
        predict : {"catalog", "array", "default"}, optional
            ``"catalog"`` (the default): a `~astropy.table.QTable` with units;
            ``"array"``: a plain array shaped like the training ``y``, which
            scikit-learn scorers such as ``scoring="r2"`` consume.

        Returns
        -------
        self
            The estimator.

        Raises
        ------
        ValueError
            If ``predict`` is none of the above.
        """
        if predict is None:
            return self
        if predict == "default":
            predict = "catalog"
        if predict not in _OUTPUTS:
            raise ValueError(f"predict output must be one of {_OUTPUTS} or 'default'; "
                             f"got {predict!r}")
        # clone() copies this attribute, so GridSearchCV keeps the choice.
        self._sklearn_output_config = {"predict": predict}
        return self

    def _output_kind(self):
        return getattr(self, "_sklearn_output_config", {}).get("predict", "catalog")

    # -- persistence -------------------------------------------------------
    def __getstate__(self):
        # The network travels as .keras bytes, with the package versions.
        from . import _persistence

        return _persistence.estimator_state(self)

    def __setstate__(self, state):
        # Sets saved_versions_; warns (SavedVersionWarning) if they differ.
        from . import _persistence

        _persistence.restore_state(self, state)
        signature = inspect.signature(type(self).__init__).parameters
        for name in self._get_param_names():
            self.__dict__.setdefault(name, _BEFORE_PARAMETER.get(name, signature[name].default))

    def save(self, path):
        """Write the estimator (parameters, fitted network and scalers) to a file.

        The file holds a short header (class, package versions, checksum)
        and a pickle with the network in Keras's ``.keras`` format; read it
        back with `load`.  The write is atomic: if it fails or is
        interrupted, an existing file at ``path`` is left as it was.  As
        with any pickle, only load files you trust.

        Parameters
        ----------
        path : str or path-like
            Destination file (``~`` is expanded; through a symbolic link,
            the file it points to is replaced).

        Raises
        ------
        TypeError
            If ``path`` is not a file name, or the estimator cannot be pickled
            (e.g. a ``lambda`` as ``architecture``).
        ValueError
            If ``path`` is empty or ends in ``.keras``, ``.h5`` or ``.hdf5``
            (the file would pass for a bare Keras network).
        IsADirectoryError
            If ``path`` is a folder.
        FileNotFoundError
            If the folder of ``path`` does not exist.
        PermissionError
            If ``path`` is read-only, or its folder is not writable.
        """
        from . import _persistence

        _persistence.save_estimator(self, path)

    @classmethod
    def load(cls, path):
        """Read an estimator written by `save`, checking that it is of this class.

        Parameters
        ----------
        path : str or path-like
            File written by `save`.

        Returns
        -------
        estimator : BaseSersicRegressor
            With ``saved_versions_``, the package versions that saved it.

        Raises
        ------
        TypeError
            If the file holds another class than this one.
        ValueError
            If the file is not an estimator file, or is truncated or corrupted.
        FileNotFoundError
            If there is no such file.

        Warns
        -----
        SavedVersionWarning
            If it was saved with other package versions than those running.
        """
        return load(path, cls)

    # -- scikit-learn tags -------------------------------------------------
    def __sklearn_is_fitted__(self):
        # Validation sets fitted attributes (targets_, ...) before training
        # starts; only a finished training makes the estimator usable.
        return hasattr(self, "n_epochs_")

    def _declared_targets(self):
        """The targets the parameters ask for (before fitting)."""
        return check_targets(self.targets)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.allow_nan = True  # NaN/inf pixels are masked, by design
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = len(self._declared_targets()) == 1
        tags.regressor_tags.poor_score = True
        tags.non_deterministic = True
        return tags


def load(path, cls=None):
    """Read an estimator written by ``save``.

    Parameters
    ----------
    path : str or path-like
        File written by an estimator's ``save``.
    cls : type, optional
        Expected class (default: any astromorphnet estimator).

    Returns
    -------
    estimator : BaseSersicRegressor
        Fitted or not, as it was saved.  Its ``saved_versions_`` attribute
        is a dict of the versions of astromorphnet, keras, tensorflow,
        scikit-learn and numpy that saved it (None for files written before
        versions were recorded).

    Raises
    ------
    TypeError
        If ``path`` is not a file name, or the file holds something else
        than ``cls``.
    ValueError
        If the file is not an estimator file (text, a bare Keras ``.keras``
        network, HDF5, ...), is empty, truncated or corrupted, or cannot be
        unpickled with the running package versions.
    FileNotFoundError
        If there is no such file.
    IsADirectoryError
        If ``path`` is a folder.

    Warns
    -----
    SavedVersionWarning
        If the file was saved with other versions of astromorphnet, keras,
        tensorflow, scikit-learn or numpy than those running.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from astromorphnet import SersicCNNRegressor, load
    >>> rng = np.random.default_rng(0)
    >>> reg = SersicCNNRegressor("light", targets=("ellipticity",), max_epochs=1,
    ...                          random_state=0).fit(rng.normal(size=(16, 16, 16)),
    ...                                              rng.uniform(0, 0.5, 16))
    >>> path = os.path.join(tempfile.mkdtemp(), "reg.pkl")
    >>> reg.save(path)
    >>> type(load(path)).__name__
    'SersicCNNRegressor'
    >>> sorted(load(path).saved_versions_)
    ['astromorphnet', 'keras', 'numpy', 'scikit-learn', 'tensorflow']
    """
    from . import _persistence

    return _persistence.load_estimator(path, cls or BaseSersicRegressor)


def _check_not_blank(stamps):
    """Raise if a training cutout has no unmasked pixel (NaN, masked or zero weight)."""
    blank = []
    for start in range(0, len(stamps), PREDICT_CHUNK):
        stop = min(start + PREDICT_CHUNK, len(stamps))
        mask = stamps.read(start, stop, stamps.shapes[0]).mask
        blank.extend((start + np.flatnonzero(mask.all(axis=(1, 2)))).tolist())
    if blank:
        raise ValueError(
            f"{len(blank)} of {len(stamps)} training cutouts have no valid pixel (all NaN, "
            f"masked or of infinite uncertainty; first: {blank[:5]}): a network cannot "
            "learn from them; drop them")


def forward(model, x):
    """``model.predict(x)``, without its per-call set-up.

    ``predict`` builds a `tf.data` pipeline at every call, about 0.2 s on a
    2-core CPU: more than the network itself takes for a few hundred
    cutouts, as `~astromorphnet.measure` gives it tile after tile.
    ``predict_on_batch`` runs the compiled forward pass directly.

    Parameters
    ----------
    model : `keras.Model`
    x : `~numpy.ndarray`
        Network inputs, at least one.

    Returns
    -------
    outputs : `~numpy.ndarray`, or a list or dict of them
        The model's outputs, of the structure of ``model.predict``'s.
    """
    import keras

    parts = [model.predict_on_batch(x[start:start + PREDICT_BATCH])
             for start in range(0, len(x), PREDICT_BATCH)]
    return keras.tree.map_structure(lambda *batches: np.concatenate(batches), *parts)


def _weights_digest(model):
    """Short hex digest of a network's weights: which fitted model made a catalog."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()[:16]


def _check_sample_weight(sample_weight, n):
    if sample_weight is None:
        return None
    sw = np.asarray(sample_weight, dtype=np.float64)
    if sw.ndim == 0:
        sw = np.full(n, float(sw))
    if sw.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), one weight per cutout; "
                         f"got {sw.shape}")
    if not np.isfinite(sw).all() or (sw < 0).any():
        raise ValueError("sample_weight must be finite and non-negative")
    if not sw.any():
        raise ValueError("sample_weight is all zero: at least one weight must be positive")
    return sw.astype(np.float32)


def _combine_members(loc, scale, family):
    """One distribution per galaxy from an ensemble's members ``(n, members, k)``.

    One member keeps its family.  Several are moment-matched by a Gaussian
    (Lakshminarayanan et al. 2017): the mean of the members' locations, and
    a variance that adds their spread (epistemic) to their mean variance
    (aleatoric).
    """
    if loc.shape[1] == 1:
        return loc[:, 0], scale[:, 0], family
    std = scale * FAMILIES[family][1]
    mean = loc.mean(axis=1)
    variance = (std ** 2 + loc ** 2).mean(axis=1) - mean ** 2
    return mean, np.sqrt(np.maximum(variance, 0.0)), "gaussian"

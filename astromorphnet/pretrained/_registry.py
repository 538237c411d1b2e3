"""The reference models shipped inside the package, by name (no download, ever)."""

from importlib import resources

__all__ = ["DEFAULT_MODEL", "list_pretrained", "load_pretrained"]

#: Name of the model `load_pretrained` and `~astromorphnet.measure` use by default.
DEFAULT_MODEL = "candels-f160w"

#: Shipped models: name -> file in ``astromorphnet/pretrained/data/`` (its
#: measured metrics sit next to it as ``.json``, written by
#: ``benchmarks/train_pretrained.py``), the survey preset it was trained on
#: (`~astromorphnet.simulation.SurveyConfig.from_preset`), the stamp size it
#: expects, and a one-line description.  Adding a model is one entry here
#: and its files in ``data/``.
_REGISTRY = {
    "candels-f160w": {
        "file": "candels_f160w.pkl", "survey": "CANDELS_F160W", "stamp_size": 64,
        "description": "HST/CANDELS F160W (0.06\"/px, AB zeropoint 25.94), 64x64 cutouts: "
                       "residual CNN trained on 18,000 domain-randomised simulated "
                       "single-Sersic galaxies, Laplace errors calibrated in-domain"},
}


def list_pretrained():
    """Names and one-line descriptions of the models shipped with the package.

    Returns
    -------
    models : dict
        ``{name: description}``; each name can be given to `load_pretrained`
        and as ``model`` to `~astromorphnet.measure`.

    Examples
    --------
    >>> from astromorphnet import list_pretrained
    >>> "candels-f160w" in list_pretrained()
    True
    """
    return {name: entry["description"] for name, entry in _REGISTRY.items()}


def load_pretrained(name=DEFAULT_MODEL):
    """Load a fitted reference model shipped with the package.

    The model file is read from the installed package
    (``importlib.resources``): nothing is downloaded.  The model card
    (:doc:`/user_guide/pretrained`) gives each model's training set,
    accuracy and intended use.

    Parameters
    ----------
    name : str, optional
        A name from `list_pretrained`; default ``"candels-f160w"``.

    Returns
    -------
    estimator : `~astromorphnet.SersicCNNRegressor`
        The fitted estimator, with its calibration.  Its attribute
        ``pretrained_name_`` is ``name`` (a refit drops it, as it drops
        every fitted attribute); its ``model_id_`` identifies the network.

    Raises
    ------
    ValueError
        If ``name`` is not a shipped model (the message lists them).
    FileNotFoundError
        If the package was installed without its model files.

    Warns
    -----
    astromorphnet.estimators.SavedVersionWarning
        If the model was saved with other versions of astromorphnet, keras,
        tensorflow, scikit-learn or numpy than those running.

    Examples
    --------
    >>> from astromorphnet import load_pretrained
    >>> model = load_pretrained("candels-f160w")  # doctest: +SKIP
    >>> model.pretrained_name_, model.input_shape_  # doctest: +SKIP
    ('candels-f160w', (64, 64))
    >>> load_pretrained("no-such-model")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: no shipped model named 'no-such-model'; known: 'candels-f160w' (...)
    """
    if not isinstance(name, str) or name not in _REGISTRY:
        known = ", ".join(map(repr, _REGISTRY))
        raise ValueError(f"no shipped model named {name!r}; known: {known} "
                         "(list_pretrained() describes them)")
    from ..estimators import SersicCNNRegressor

    resource = resources.files(__package__).joinpath("data", _REGISTRY[name]["file"])
    if not resource.is_file():
        raise FileNotFoundError(
            f"the file of the shipped model {name!r} ({resource}) is missing: the package was "
            "installed without its data files; reinstall astromorphnet")
    with resources.as_file(resource) as path:
        estimator = SersicCNNRegressor.load(path)
    estimator.pretrained_name_ = name
    return estimator

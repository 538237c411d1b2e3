"""Sphinx configuration: sphinx-astropy defaults, automodapi, numpydoc, sphinx-gallery.

Build (warnings are errors; offline builds skip intersphinx)::

    sphinx-build -W -b html -D disable_intersphinx=1 docs docs/_build/html

``ASTROMORPHNET_EXAMPLE_SCALE`` (e.g. ``0.05``) shrinks the gallery's examples.
"""

import os
from importlib.metadata import version as _version

from sphinx_astropy.conf.v3 import *  # noqa: F403
from sphinx_astropy.conf.v3 import exclude_patterns, extensions, intersphinx_mapping

project = "astromorphnet"
author = "The astromorphnet developers"
copyright = "2026, " + author
release = _version("astromorphnet")
version = ".".join(release.split(".")[:2])

extensions += ["sphinx_gallery.gen_gallery"]
exclude_patterns += ["_build", "**.ipynb_checkpoints"]
nitpicky = True
nitpick_ignore_regex = [
    # numpydoc type words that are not objects.
    ("py:class", r"(array-like|callable|path-like|file-like|optional|default.*|or|of)"),
    ("py:class", r"(str|int|float|bool|dict|list|tuple|None)\b.*"),
    # Private base class shown in the estimators' "Bases:" lines.
    ("py:class", r"astromorphnet\.estimators\._domains\.DomainScoreMixin"),
    # scikit-learn's generated set_fit_request/set_score_request docstrings
    # cite its own user guide.
    ("std:ref", "metadata_routing"),
    ("std:term", "meta-estimator"),
]

intersphinx_mapping.update({
    "astropy": ("https://docs.astropy.org/en/stable/", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "sklearn": ("https://scikit-learn.org/stable/", None),
    "photutils": ("https://photutils.readthedocs.io/en/stable/", None),
    "galsim": ("https://galsim-developers.github.io/GalSim/_build/html/", None),
})

#: Packages referenced in docstrings.  Those without an inventory above (Keras
#: publishes none) never resolve; without intersphinx (offline builds) none of
#: them do.  References to them are then left unresolved on purpose.
_EXTERNAL = ("astropy", "numpy", "sklearn", "scipy", "matplotlib", "photutils", "galsim",
             "keras", "tensorflow", "h5py", "zarr", "threadpoolctl", "enum", "dask",
             "distributed")

html_theme_options = {"github_url": "https://github.com/astromorphnet/astromorphnet"}
# sphinx-astropy's changelog_links turns "[#12]" in CHANGES.rst into links.
github_issues_url = "https://github.com/astromorphnet/astromorphnet/issues/"
html_title = f"astromorphnet {release}"

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "generated/gallery",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "reference_url": {"astromorphnet": None},
}
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _unresolvable_references(app, config):
    external = [name for name in _EXTERNAL
                if config.disable_intersphinx or name not in config.intersphinx_mapping]
    config.nitpick_ignore_regex = list(config.nitpick_ignore_regex) + [
        (r"py:.*", rf"~?{name}(\..*)?") for name in external]


def _top_level_alias(app, env, node, contnode):
    """Resolve ``astromorphnet.X[.attr]`` (how users import X) to the page documenting X."""
    import astromorphnet

    parts = node.get("reftarget", "").split(".")
    if (node.get("refdomain") != "py" or len(parts) < 2 or parts[0] != "astromorphnet"
            or parts[1] not in astromorphnet._LAZY):
        return None
    node["reftarget"] = ".".join(["astromorphnet", astromorphnet._LAZY[parts[1]], *parts[1:]])
    return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, node["reftype"],
                                             node["reftarget"], node, contnode)


def setup(app):
    app.connect("config-inited", _unresolvable_references, priority=600)
    app.connect("missing-reference", _top_level_alias)

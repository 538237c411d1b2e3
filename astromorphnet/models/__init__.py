"""Keras network builders (importing this subpackage imports Keras)."""

from ._architectures import *  # noqa: F403
from ._architectures import __all__

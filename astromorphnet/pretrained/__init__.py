"""Reference models shipped inside the package: `load_pretrained`, `list_pretrained`.

Nothing is downloaded; TensorFlow is imported only when a model is loaded.
"""

from ._registry import *  # noqa: F403
from ._registry import __all__ as _registry_all

__all__ = list(_registry_all)

"""Label-free model selection under domain shift: scorers that need no target labels."""

from ._scorers import *  # noqa: F403
from ._scorers import __all__ as _scorers_all

__all__ = list(_scorers_all)

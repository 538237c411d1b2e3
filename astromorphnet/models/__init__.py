"""Keras networks: regression CNNs and the domain-adversarial (DANN) model."""

from ._architectures import *  # noqa: F403
from ._architectures import __all__ as _architectures_all
from ._dann import *  # noqa: F403
from ._dann import __all__ as _dann_all
from ._transfer import *  # noqa: F403
from ._transfer import __all__ as _transfer_all

__all__ = _architectures_all + _dann_all + _transfer_all

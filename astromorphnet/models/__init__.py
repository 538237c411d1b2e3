"""Keras networks: regression CNNs and the domain-adversarial (DANN) model."""

from ._alignment import *  # noqa: F403
from ._alignment import __all__ as _alignment_all
from ._architectures import *  # noqa: F403
from ._architectures import __all__ as _architectures_all
from ._augment import *  # noqa: F403
from ._augment import __all__ as _augment_all
from ._bounds import *  # noqa: F403
from ._bounds import __all__ as _bounds_all
from ._dann import *  # noqa: F403
from ._dann import __all__ as _dann_all
from ._ensemble import *  # noqa: F403
from ._ensemble import __all__ as _ensemble_all
from ._likelihoods import *  # noqa: F403
from ._likelihoods import __all__ as _likelihoods_all
from ._transfer import *  # noqa: F403
from ._transfer import __all__ as _transfer_all

__all__ = (_alignment_all + _architectures_all + _augment_all + _bounds_all + _dann_all
           + _ensemble_all + _likelihoods_all + _transfer_all)

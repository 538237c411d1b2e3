"""scikit-learn estimators: cutouts in, Sérsic catalogs out (Keras imported lazily)."""

from ._adversarial import *  # noqa: F403
from ._adversarial import __all__ as _adversarial_all
from ._base import *  # noqa: F403
from ._base import __all__ as _base_all
from ._domains import SOURCE, TARGET, stack_domains
from ._persistence import SavedVersionWarning
from ._sersic import *  # noqa: F403
from ._sersic import __all__ as _sersic_all
from ._transfer import *  # noqa: F403
from ._transfer import __all__ as _transfer_all

__all__ = (_base_all + _sersic_all + _transfer_all + _adversarial_all
           + ["SOURCE", "TARGET", "SavedVersionWarning", "stack_domains"])

"""segloss_jax: semantic-segmentation losses and metrics in pure, jit-compiled JAX.

Every loss takes ``logits`` (``[B, *spatial, C]``, channels last) first and
``labels`` (integer ``[B, *spatial]`` or dense ``[B, *spatial, C]``) second, with
every other argument keyword-only. The documentation's conventions page
describes the keywords the losses share.

Each family's module (or each module of a family's package) lists its public
names in its ``__all__``, and they are star-imported here; ``__all__`` orders them
as ``segloss_jax/_src/families.py`` does (the table the registry and the docs read).
"""

from segloss_jax._src import families as _families
from segloss_jax._src.boundary import *  # noqa: F403
from segloss_jax._src.compound import *  # noqa: F403
from segloss_jax._src.distance import *  # noqa: F403
from segloss_jax._src.helpers import *  # noqa: F403
from segloss_jax._src.lovasz import *  # noqa: F403
from segloss_jax._src.metrics.boundary import *  # noqa: F403
from segloss_jax._src.metrics.calibration import *  # noqa: F403
from segloss_jax._src.metrics.confusion import *  # noqa: F403
from segloss_jax._src.metrics.surface import *  # noqa: F403
from segloss_jax._src.mining import *  # noqa: F403
from segloss_jax._src.pixelwise import *  # noqa: F403
from segloss_jax._src.region.blob import *  # noqa: F403
from segloss_jax._src.region.boundary_dou import *  # noqa: F403
from segloss_jax._src.region.overlap import *  # noqa: F403
from segloss_jax._src.region.soft_label import *  # noqa: F403
from segloss_jax._src.region.wasserstein import *  # noqa: F403
from segloss_jax._src.rmi import *  # noqa: F403
from segloss_jax._src.skeletonize import *  # noqa: F403
from segloss_jax._src.structural import *  # noqa: F403
from segloss_jax._src.topology import *  # noqa: F403
from segloss_jax._src.weights import *  # noqa: F403

__version__ = "0.2.0"

# Family by family, as segloss_jax/_src/families.py orders them (the docs follow it too).
__all__ = _families.public_names()

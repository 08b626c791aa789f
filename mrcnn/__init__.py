"""mrcnn: Mask R-CNN for instance segmentation on Keras 3.

Public names::

    from mrcnn import Config, Dataset, MaskRCNN

Matterport's module paths keep working: ``mrcnn.config.Config``,
``mrcnn.utils`` (``utils.Dataset``, ``utils.compute_ap``, ...),
``mrcnn.model.MaskRCNN`` and ``mrcnn.visualize``.
"""

__version__ = "0.1.0"

from mrcnn.config import Config  # noqa: E402
from mrcnn.dataset import Dataset  # noqa: E402


def __getattr__(name):
    # The model pulls in Keras and a backend; import it only when asked for.
    if name == "MaskRCNN":
        from mrcnn.model import MaskRCNN
        return MaskRCNN
    raise AttributeError(f"module 'mrcnn' has no attribute {name!r}")


__all__ = ["Config", "Dataset", "MaskRCNN", "__version__"]

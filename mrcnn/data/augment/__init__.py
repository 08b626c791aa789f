"""Training augmentation that keeps image, masks, boxes and window aligned.

    from mrcnn.data import augment
    model.train(..., augmentation=augment.Compose([augment.Fliplr(), augment.Flipud()]))
"""

from mrcnn.data.augment.adapters import AlbumentationsAdapter, CallableAdapter, ImgaugAdapter
from mrcnn.data.augment.core import *  # noqa: F401,F403
from mrcnn.data.augment.core import __all__ as _core_all

__all__ = list(_core_all) + ["AlbumentationsAdapter", "CallableAdapter", "ImgaugAdapter"]

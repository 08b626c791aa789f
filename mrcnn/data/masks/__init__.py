"""Instance masks on the NumPy side.

* ``mini``: mini masks inside boxes (Matterport's ``minimize_mask``,
  ``expand_mask``, ``unmold_mask``) and pasting box masks into the image.
* ``instances``: label layers / box masks, the compact form the data
  pipeline moves through augmentation.
* ``sparse``: :class:`SparseMasks`, the foreground pixels of many instances.
"""

from mrcnn.data.masks.instances import BoxMasks, InstanceLayers
from mrcnn.data.masks.mini import expand_mask, minimize_mask, paste_masks, unmold_mask
from mrcnn.data.masks.sparse import FLIPS, SparseMasks

__all__ = ["BoxMasks", "InstanceLayers", "expand_mask", "minimize_mask", "paste_masks",
           "unmold_mask", "FLIPS", "SparseMasks"]

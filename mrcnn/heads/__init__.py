"""The parts of the model after the backbone: FPN, RPN, box head, mask heads.

* ``fpn``: C2..C5 -> P2..P6 (``build_fpn``).
* ``rpn``: the shared region-proposal head (``build_rpn_model``, ``apply_rpn``).
* ``box``: class logits and box deltas per ROI (``build_box_head``).
* ``mask``: the standard 28N mask head; ``registry``: the mask-head registry
  (``Config.MASK_HEAD``: a name or a callable).
* ``names``: the layer-name prefixes of each part.

Importing the package registers the standard mask head.
"""

from mrcnn.heads import mask  # noqa: F401  (registers "standard")
from mrcnn.heads.registry import (available_mask_heads, get_mask_head, register_mask_head,
                                  unregister_mask_head)

__all__ = ["available_mask_heads", "get_mask_head", "register_mask_head",
           "unregister_mask_head"]

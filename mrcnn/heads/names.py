"""Layer-name prefixes of the parts of the model: the one place that defines them.

Every layer of the FPN is named ``fpn_*``, of the RPN ``rpn_*`` and of the
box and mask heads ``mrcnn_*`` (Matterport's names); everything else belongs
to the backbone. Training modes (``train(layers="heads")``), weight
exclusion (``exclude="heads"``) and parameter counts rely on these names.
"""

import re

#: part name -> layer-name prefix
PART_PREFIXES = {"fpn": "fpn_", "rpn": "rpn_", "heads": "mrcnn_"}
HEAD_PREFIXES = tuple(PART_PREFIXES.values())
#: Matterport's regex of the layers trained with ``layers="heads"``.
HEADS_REGEX = "|".join(f"({re.escape(p)}.*)" for p in ("mrcnn_", "rpn_", "fpn_"))
#: Layers whose shapes depend on NUM_CLASSES with the standard heads
#: (Matterport's exclusion list for COCO weights with other classes).
CLASS_SPECIFIC_LAYERS = ("mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask")


def part_of(layer_name):
    """"fpn", "rpn", "heads" or "backbone": the part a layer belongs to, by its name."""
    for part, prefix in PART_PREFIXES.items():
        if layer_name.startswith(prefix):
            return part
    return "backbone"

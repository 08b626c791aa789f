"""Classifier and box-regression head (Matterport's ``fpn_classifier_graph``).

Layer names: ``mrcnn_class_conv1``, ``mrcnn_class_bn1``, ``mrcnn_class_conv2``,
``mrcnn_class_bn2``, ``mrcnn_class_logits``, ``mrcnn_bbox_fc``.
"""

from keras import layers

from mrcnn.heads.roi_reshape import MergeRoiBatch, SplitRoiBatch
from mrcnn.heads.window_conv import WindowConv2D


def build_box_head(pooled, num_rois, num_classes, fc_layers_size=1024):
    """Class logits and per-class box deltas for each ROI.

    Args:
        pooled: ROIAlign output [B, N, pool, pool, C].
        num_rois: N (static).
        num_classes: classes including background.
        fc_layers_size: width of the two "fully connected" layers
            (FPN_CLASSIF_FC_LAYERS_SIZE); the first is a pool x pool conv,
            the second a 1x1 conv, as Matterport's (same variables), computed
            as matrix products (`mrcnn.heads.window_conv.WindowConv2D`).

    Returns:
        class_logits [B, N, num_classes], class_probs [B, N, num_classes],
        bbox [B, N, num_classes, 4] (dy, dx, log dh, log dw), still divided
        by BBOX_STD_DEV.
    """
    pool = pooled.shape[2]
    x = MergeRoiBatch(name="mrcnn_class_merge")(pooled)
    x = WindowConv2D(fc_layers_size, pool, padding="valid", name="mrcnn_class_conv1")(x)
    x = layers.BatchNormalization(name="mrcnn_class_bn1")(x)
    x = layers.Activation("relu")(x)
    x = WindowConv2D(fc_layers_size, 1, name="mrcnn_class_conv2")(x)
    x = layers.BatchNormalization(name="mrcnn_class_bn2")(x)
    x = layers.Activation("relu")(x)
    shared = layers.Reshape((fc_layers_size,), name="pool_squeeze")(x)
    # Outputs in float32 also under a mixed-precision policy (mrcnn.training.precision).
    f32 = "float32"
    logits = layers.Dense(num_classes, name="mrcnn_class_logits", dtype=f32)(shared)
    bbox = layers.Dense(num_classes * 4, name="mrcnn_bbox_fc", dtype=f32)(shared)
    bbox = layers.Reshape((num_classes, 4), name="mrcnn_bbox_reshape", dtype=f32)(bbox)
    logits = SplitRoiBatch(num_rois, name="mrcnn_class_split", dtype=f32)(logits)
    probs = layers.Activation("softmax", name="mrcnn_class", dtype=f32)(logits)
    bbox = SplitRoiBatch(num_rois, name="mrcnn_bbox", dtype=f32)(bbox)
    return logits, probs, bbox

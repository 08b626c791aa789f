"""Region Proposal Network head, shared over pyramid levels.

The head is a nested Keras model named ``rpn_model`` (as in Matterport) with
layers ``rpn_conv_shared``, ``rpn_class_raw`` and ``rpn_bbox_pred``, so that
Matterport's weights load into it by name.
"""

import keras
from keras import layers, ops

from mrcnn.heads.same_conv import SameConv2D

#: The shared conv's width for RPN_CONV_CHANNELS = "auto" (torchvision's; Matterport's is 512).
AUTO_CONV_CHANNELS = 256


def conv_channels(setting):
    """The shared conv's width for a RPN_CONV_CHANNELS setting ("auto" or an int)."""
    return AUTO_CONV_CHANNELS if setting == "auto" else int(setting)


def file_conv_channels(shape_mismatch):
    """The shared conv's width in a weight file, from a load report's ``shape_mismatch``.

    Args:
        shape_mismatch: [(layer name, model shapes, file shapes)] as
            `mrcnn.weights.h5.load_weights_file` reports them.

    Returns:
        the output channels of the file's ``rpn_conv_shared`` kernel
        ``[3, 3, depth, channels]`` where its shape differs from the model's
        in that width only, else None.
    """
    for name, want, got in shape_mismatch:
        if name == "rpn_conv_shared" and len(want) == len(got) and want and \
                len(want[0]) == len(got[0]) == 4 and want[0][:3] == got[0][:3]:
            return int(got[0][3])
    return None


@keras.saving.register_keras_serializable(package="mrcnn")
class FlattenAnchors(layers.Layer):
    """[B, H, W, A * k] -> [B, H * W * A, k] (anchor order: row, column, anchor)."""

    def __init__(self, k, **kwargs):
        super().__init__(**kwargs)
        if int(k) != k or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        self.k = int(k)

    def call(self, x):
        self.compute_output_shape(x.shape)  # checks the channels
        shape = ops.shape(x)
        return ops.reshape(x, (shape[0], -1, self.k))

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        if c is not None and c % self.k:
            raise ValueError(f"FlattenAnchors: {c} channels are not a multiple of k={self.k} "
                             f"values per anchor")
        n = None if h is None or w is None else h * w * c // self.k
        return (b, n, self.k)

    def get_config(self):
        return {**super().get_config(), "k": self.k}


def build_rpn_model(anchors_per_location, depth, anchor_stride=1, channels=512):
    """The shared RPN head as a model applied to each pyramid level.

    Args:
        anchors_per_location: anchors per feature-map cell (sizes per level x ratios).
        depth: channels of the pyramid levels.
        anchor_stride: stride of the shared 3x3 conv (RPN_ANCHOR_STRIDE).
        channels: width of the shared 3x3 conv (`conv_channels` of
            RPN_CONV_CHANNELS; 512 in Matterport, 256 in torchvision).

    Returns:
        keras.Model mapping a feature map [B, h, w, depth] to
        [rpn_class_logits [B, h*w*A, 2], rpn_probs [B, h*w*A, 2],
        rpn_bbox [B, h*w*A, 4] (dy, dx, log dh, log dw) deltas].
    """
    feature_map = keras.Input(shape=(None, None, depth), name="input_rpn_feature_map")
    shared = SameConv2D(channels, 3, padding="same", activation="relu",
                        strides=anchor_stride, name="rpn_conv_shared")(feature_map)
    # Scores and deltas in float32 also under a mixed-precision policy.
    f32 = "float32"
    x = layers.Conv2D(2 * anchors_per_location, 1, padding="valid",
                      name="rpn_class_raw", dtype=f32)(shared)
    logits = FlattenAnchors(2, name="rpn_class_flat", dtype=f32)(x)
    probs = layers.Activation("softmax", name="rpn_class_xxx", dtype=f32)(logits)
    x = layers.Conv2D(4 * anchors_per_location, 1, padding="valid",
                      name="rpn_bbox_pred", dtype=f32)(shared)
    bbox = FlattenAnchors(4, name="rpn_bbox_flat", dtype=f32)(x)
    return keras.Model(feature_map, [logits, probs, bbox], name="rpn_model")


def apply_rpn(rpn_model, feature_maps, num_anchors=None):
    """Run the shared head on every level and concatenate along anchors.

    Args:
        rpn_model: from :func:`build_rpn_model`.
        feature_maps: [P2, ..., P6].
        num_anchors: total anchor count A; when given, the outputs get this
            static length (the nested model's outputs have an open length).

    Returns:
        rpn_class_logits [B, A, 2], rpn_probs [B, A, 2], rpn_bbox [B, A, 4],
        where A is the total anchor count over all levels, in level order.
    """
    outputs = [rpn_model(p) for p in feature_maps]
    names = ["rpn_class_logits", "rpn_class", "rpn_bbox"]
    results = []
    for i, (name, k) in enumerate(zip(names, (2, 2, 4))):
        x = layers.Concatenate(axis=1, name=name if num_anchors is None else name + "_concat")(
            [o[i] for o in outputs])
        if num_anchors is not None:
            x = layers.Reshape((int(num_anchors), k), name=name)(x)
        results.append(x)
    return results

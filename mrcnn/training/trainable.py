"""Which layers train: Matterport's ``layers=`` modes and regexes over layer names.

``train(layers=...)`` takes "heads" (FPN, RPN and the heads: layers named
``fpn_*``, ``rpn_*``, ``mrcnn_*``), "3+", "4+", "5+" (the backbone's stages
from 3, 4 or 5 on, as the backbone declares them, plus the heads), "all", or
a regex over layer names (applied with ``re.fullmatch``, as Matterport does).
"""

import re

import keras

from mrcnn.heads.names import HEADS_REGEX
from mrcnn.layers.walk import is_container, leaf_layers

LAYER_MODES = ("heads", "3+", "4+", "5+", "all")


def layer_regex(layers, backbone):
    """The trainable-layer regex for a `layers` mode or a user regex.

    Args:
        layers: a mode of :data:`LAYER_MODES` or a regex string.
        backbone: the model's `backbones.Backbone` (its layer groups).

    Raises:
        ValueError: neither a mode nor a valid regex; a mode the backbone
            does not declare.
    """
    if layers == "heads":
        return HEADS_REGEX
    if layers in LAYER_MODES:
        return f"({backbone.layer_regex(layers)})|{HEADS_REGEX}"
    if isinstance(layers, str):
        try:
            re.compile(layers)
        except re.error as exc:
            raise ValueError(f"layers must be one of {LAYER_MODES} or a regex; "
                             f"{layers!r} is neither ({exc})") from None
        return layers
    raise ValueError(f"layers must be one of {LAYER_MODES} or a regex, got {layers!r}")


def set_trainable(model, pattern, train_bn=True):
    """Make the layers whose names fully match `pattern` trainable and freeze the rest.

    Nested models (the RPN, an EfficientNetV2 backbone) are entered and their
    inner layer names matched; a nested model is trainable iff one of its
    layers is. With ``train_bn=False`` every BatchNormalization layer stays
    frozen (Keras 3 then runs it in inference mode: right for small batches).

    Args:
        model: a Keras model.
        pattern: regex string for ``re.fullmatch``, or None (freeze all).
        train_bn: whether batch norms may train.

    Returns:
        names of the leaf layers made trainable, in model order.
    """
    regex = re.compile(pattern) if pattern is not None else None
    trained = []
    for layer in model.layers:
        if is_container(layer):
            # Setting a container's flag sets it on everything inside: make the
            # container trainable first, then decide layer by layer, and freeze
            # it as a whole only when nothing inside trains.
            layer.trainable = True
            inner = set_trainable(layer, pattern, train_bn)
            if not inner:
                layer.trainable = False
            trained.extend(inner)
            continue
        flag = bool(regex is not None and regex.fullmatch(layer.name))
        if flag and not train_bn and isinstance(layer, keras.layers.BatchNormalization):
            flag = False
        layer.trainable = flag
        if flag:
            trained.append(layer.name)
    return trained


def trainable_layers(model):
    """The leaf layers that hold weights and train (Matterport's ``get_trainable_layers``)."""
    return [layer for layer in leaf_layers(model) if layer.weights and layer.trainable]

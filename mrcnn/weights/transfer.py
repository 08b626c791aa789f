"""Weights from one built model into another of (partly) the same layers, by leaf-layer name."""

from mrcnn.layers.walk import leaf_layers


def copy_weights_by_name(source, target):
    """Copy each leaf layer's weights from `source` to the `target` layer of that name.

    Layers missing from either model, or whose weights differ in number or
    shape (a wider RPN conv, another NUM_CLASSES), are left as `target` has them.

    Args:
        source, target: built ``keras.Model``s (nested models are entered).

    Returns:
        the names of the layers copied, in `target`'s order.
    """
    by_name = {layer.name: layer for layer in leaf_layers(source) if layer.weights}
    copied = []
    for layer in leaf_layers(target):
        other = by_name.get(layer.name)
        if other is None or not layer.weights:
            continue
        values = other.get_weights()
        if [tuple(w.shape) for w in layer.weights] != [v.shape for v in values]:
            continue
        layer.set_weights(values)
        copied.append(layer.name)
    return copied

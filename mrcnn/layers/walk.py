"""Walking nested Keras models down to their leaf layers."""


def is_container(layer):
    """True for a layer that holds other layers (a nested ``keras.Model``)."""
    inner = getattr(layer, "layers", None)
    return isinstance(inner, (list, tuple)) and bool(inner)


def leaf_layers(model):
    """The layers of `model` that hold no other layers, depth first, in model order.

    Nested models (the RPN ``rpn_model``, an EfficientNetV2 backbone) are
    entered; the nested model itself is not yielded.
    """
    for layer in model.layers:
        if is_container(layer):
            yield from leaf_layers(layer)
        else:
            yield layer

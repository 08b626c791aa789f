"""Weights from one built model into another of (partly) the same layers, by leaf-layer name."""

from mrcnn.layers.walk import leaf_layers


def shared_variables(source_model, target_model, strict=True):
    """``[(source variable, target variable)]`` of leaf layers with the same name, for copying.

    Nested models are entered. With `strict`, every weight-holding leaf layer
    of `target_model` must have a namesake in `source_model` with weights of
    the same shapes (the training and inference graphs share layer names);
    otherwise such layers are left out (a wider RPN conv, another NUM_CLASSES).

    Raises:
        ValueError (strict): naming a layer without namesake or with other shapes.
    """
    source = {layer.name: layer.weights for layer in leaf_layers(source_model) if layer.weights}
    pairs = []
    for layer in leaf_layers(target_model):
        if not layer.weights:
            continue
        if layer.name not in source:
            if not strict:
                continue
            raise ValueError(f"layer {layer.name!r} of the inference model has no namesake in "
                             f"the training model; they must be built from the same config")
        mine, theirs = layer.weights, source[layer.name]
        if [tuple(v.shape) for v in mine] != [tuple(v.shape) for v in theirs]:
            if not strict:
                continue
            raise ValueError(f"layer {layer.name!r}: training weights "
                             f"{[tuple(v.shape) for v in theirs]}, inference weights "
                             f"{[tuple(v.shape) for v in mine]}; the inference config must "
                             f"match the training config (NUM_CLASSES, BACKBONE, MASK_SHAPE, ...)")
        pairs += list(zip(theirs, mine))
    return pairs


def copy_weights_by_name(source, target):
    """Copy each leaf layer's weights from `source` to the `target` layer of that name.

    Layers missing from either model, or whose weights differ in number or
    shape, are left as `target` has them (`shared_variables` with strict=False).

    Returns:
        the number of variables copied.
    """
    pairs = shared_variables(source, target, strict=False)
    for src, dst in pairs:
        dst.assign(src)
    return len(pairs)

"""Looking inside: Matterport's notebook helpers (``log``, ``run_graph``, ``ancestor``, ``data_generator``).

Matterport's ``inspect_data`` / ``inspect_model`` notebooks call these as
``modellib.log``, ``modellib.data_generator``, ``model.run_graph`` and
``model.ancestor``; `mrcnn.model` exposes them under those names.
"""

import collections
import re

import keras
import numpy as np

from mrcnn.data.boxes import denorm_boxes
from mrcnn.data.generator import DataGenerator


def log(text, array=None):
    """Print `text`, and for an array its shape, min, max and dtype (Matterport's ``log``).

    Returns:
        the printed line.
    """
    if array is not None:
        array = np.asarray(array)
        text = text.ljust(25) + f"shape: {str(array.shape):20}  "
        if array.size:
            text += f"min: {float(array.min()):10.5f}  max: {float(array.max()):10.5f}"
        else:
            text += f"min: {'':10}  max: {'':10}"
        text += f"  {array.dtype}"
    print(text)
    return text


def ancestor(tensor, name):
    """The nearest ancestor of a symbolic tensor produced by a layer called `name`.

    Args:
        tensor: a KerasTensor of a functional model (e.g.
            ``model.keras_model.get_layer("mrcnn_detection").output``).
        name: a regex matched (``re.fullmatch``) against layer names;
            Matterport's TensorFlow tensor names such as
            ``"ROI/rpn_non_max_suppression:0"`` match by their layer part
            (``"ROI"``).

    Returns:
        the ancestor tensor (breadth first: the closest match), or None.
    """
    pattern = re.compile(name) if isinstance(name, str) else name
    layer_part = re.compile(name.split("/")[0]) if isinstance(name, str) and "/" in name \
        else None
    seen, queue = set(), collections.deque([tensor])
    while queue:
        history = getattr(queue.popleft(), "_keras_history", None)
        if history is None:
            continue
        node = history.operation._inbound_nodes[history.node_index]
        for parent in node.input_tensors:
            if id(parent) in seen:
                continue
            seen.add(id(parent))
            producer = parent._keras_history.operation.name
            if pattern.fullmatch(producer) or (layer_part and layer_part.fullmatch(producer)):
                return parent
            queue.append(parent)
    return None


def find_trainable_layer(layer):
    """The layer holding the weights of `layer` (Matterport's: unwraps TimeDistributed)."""
    while isinstance(layer, keras.layers.Wrapper):
        layer = layer.layer
    return layer


def run_graph(keras_model, inputs, outputs, verbose=1):
    """Compute some tensors of a model on some inputs (Matterport's ``run_graph``).

    Args:
        keras_model: the functional model whose tensors are asked for.
        inputs: the model's inputs (a list or dict, full batch).
        outputs: list of ``(name, tensor)`` pairs; the tensors belong to
            `keras_model`'s graph (e.g. ``keras_model.get_layer("ROI").output``).
        verbose: print each result with `log`.

    Returns:
        OrderedDict name -> NumPy array.
    """
    outputs = collections.OrderedDict(outputs)
    missing = [k for k, v in outputs.items() if v is None]
    if missing:
        raise ValueError(f"outputs {missing} are None; pass tensors of the model")
    probe = keras.Model(keras_model.inputs, list(outputs.values()))
    values = probe.predict_on_batch(inputs)
    if len(outputs) == 1:
        values = [values]
    result = collections.OrderedDict(
        (k, keras.ops.convert_to_numpy(v)) for k, v in zip(outputs, values))
    if verbose:
        for k, v in result.items():
            log(k, v)
    return result


def data_generator(dataset, config, shuffle=True, augment=False, augmentation=None,
                   random_rois=0, batch_size=1, detection_targets=False,
                   no_augmentation_sources=None, seed=0):
    """Endless ``(inputs, outputs)`` batches in Matterport's list layout (for inspection).

    ``inputs`` is ``[images, image_metas, rpn_match, rpn_bbox, gt_class_ids,
    gt_boxes, gt_masks]``: molded float32 images ``[B, H, W, C]``, metas,
    ``rpn_match`` int32 ``[B, A, 1]`` (1 positive, -1 negative, 0 neutral),
    ``rpn_bbox`` ``[B, RPN_TRAIN_ANCHORS_PER_IMAGE, 4]`` deltas, gt class ids
    ``[B, MAX_GT_INSTANCES]``, gt boxes int32 PIXEL ``[B, MAX_GT_INSTANCES,
    (y1, x1, y2, x2)]`` and masks ``[B, h, w, MAX_GT_INSTANCES]`` (mini masks
    with USE_MINI_MASK); ``outputs`` is ``[]``. Training itself uses
    `mrcnn.data.generator.DataGenerator`, whose dict batches hold the same
    arrays.

    Args:
        dataset, config: the Dataset and the Config.
        shuffle: a new image order every pass.
        augment: Matterport's flag: flip left-right half of the time.
        augmentation: see `mrcnn.data.augment.as_augmenter`.
        random_rois, detection_targets: Matterport's debugging options for
            feeding ROIs from the generator; not supported (the heads always
            train on RPN proposals): a ValueError says so.
        batch_size: images per batch (independent of Config.BATCH_SIZE).
        no_augmentation_sources: dataset sources not to augment.
        seed: seed of the order and of the augmentation.
    """
    if random_rois or detection_targets:
        raise ValueError(
            f"data_generator(random_rois={random_rois!r}, detection_targets="
            f"{detection_targets!r}): feeding ROIs from the generator is not supported; "
            f"the heads train on RPN proposals. To look at the detection targets, run "
            f"the training graph: model.run_graph(...) on a DataGenerator batch, or see "
            f"notebooks/inspect_model.ipynb")
    if augment and augmentation is None:
        from mrcnn.data.augment import Fliplr
        augmentation = Fliplr(0.5)
    gen = DataGenerator(dataset, config, shuffle=shuffle, augmentation=augmentation,
                        seed=seed, no_augmentation_sources=no_augmentation_sources,
                        batch_size=batch_size)
    h, w = int(config.IMAGE_SHAPE[0]), int(config.IMAGE_SHAPE[1])
    while True:
        for index in range(len(gen)):
            batch = gen[index]
            boxes = batch["input_gt_boxes"]
            pixel = denorm_boxes(boxes.reshape(-1, 4), (h, w)).reshape(boxes.shape)
            pixel[~np.any(boxes != 0, axis=-1)] = 0          # padding stays zero
            yield [batch["input_image"], batch["input_image_meta"],
                   batch["input_rpn_match"][..., None], batch["input_rpn_bbox"],
                   batch["input_gt_class_ids"], pixel, batch["input_gt_masks"]], []
        gen.on_epoch_end()

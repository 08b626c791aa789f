"""Exported models: a Mask R-CNN inference model as a SavedModel, an ONNX file or a `.keras` file.

    from mrcnn.inference.export import export_model
    export_model(model, "exported/cell", format="tf_saved_model")   # or "onnx", "keras"

The SavedModel and ONNX formats hold one serving function that needs
neither this library nor its config:

    inputs   images   float32 [B, H, W, C]  pixel values (0..255, RGB), already
                      resized and padded to the model input (IMAGE_SHAPE); the
                      mean pixel is subtracted inside
             windows  float32 [B, 4]        (y1, x1, y2, x2) of the real image
                      in each input, pixels, y2/x2 exclusive ([0, 0, H, W]
                      for an image that fills the input); outside it the
                      input is ignored
    outputs  boxes       float32 [B, N, 4]  (y1, x1, y2, x2) input pixels, y2/x2
                         exclusive (Matterport's denormalisation)
             class_ids   int32 [B, N]       0 marks an empty row
             scores      float32 [B, N]
             masks       float32 [B, N, m, m] mask probabilities of each
                         detection's class, in its box (paste them there)
             num_detections int32 [B]

``B`` is the model's BATCH_SIZE and ``N`` its DETECTION_MAX_INSTANCES; the
rows of each image are sorted by score. Next to the model (``mrcnn_export.json``
inside a SavedModel folder, ``<file>.json`` beside an ONNX or `.keras` file)
goes what a loader needs: the input shape, resize mode and sizes, mean pixel,
class names, mask threshold, library version and this signature
(`mrcnn.inference.exported.load_exported` reads it and returns
Matterport-style results).

A `.keras` file holds the inference graph itself (inputs molded images and
image metas, Matterport's outputs): ``keras.saving.load_model(path)`` after
``import mrcnn.model`` (which registers the library's layers) rebuilds it on
any backend, its batch norms computed apart; `load_exported` folds them into their
convolutions as `MaskRCNN` does (`mrcnn.layers.batch_norm_fold`), for the library's
numbers exactly.

What works where (measured with Keras 3.15, TensorFlow 2.21, JAX 0.10, torch
2.13; README "Exported models"): `.keras` on TensorFlow, JAX and PyTorch;
the SavedModel on TensorFlow and on JAX (jax2tf, with the StableHLO version
TensorFlow reads, `_stablehlo_readable_by_tensorflow`); ONNX on TensorFlow
(tf2onnx; the detection layer picks classes with
`mrcnn.layers.detection.first_argmax` because `keras.ops.argmax` of floats
becomes Bitcast/BitwiseAnd, which tf2onnx leaves unconverted). Should a graph
(e.g. a custom head) still hold an op ONNX lacks, `export_model` raises a
ValueError naming it (`unsupported_onnx_ops`) instead of writing a file ONNX
Runtime refuses. The other backend/format pairs raise a
ValueError naming the backend and the formats that work there.

ONNX graphs are float32: a model whose ``MIXED_PRECISION = "auto"`` (the
default) chose 16 bits on this machine is exported as its float32 twin
(`float32_twin`); an explicit "bfloat16"/"float16" model is refused.
"""

import contextlib
import copy
import json
import os
import shutil

import keras
import numpy as np
from keras import ops

from mrcnn.config import jsonable
from mrcnn.training.precision import resolve

#: Export formats, in the order of preference.
FORMATS = ("tf_saved_model", "onnx", "keras")

#: File name of the metadata inside a SavedModel folder.
METADATA_NAME = "mrcnn_export.json"

#: The formats each backend can write (measured; see the module docstring).
SUPPORTED = {
    "tensorflow": ("tf_saved_model", "onnx", "keras"),
    "jax": ("tf_saved_model", "keras"),
    "torch": ("keras",),
}

_WHY_NOT = {
    ("torch", "tf_saved_model"): "Keras writes a SavedModel from PyTorch only through "
                                 "torch_xla",
    ("torch", "onnx"): "torch.onnx cannot trace the detection graph: torch.export stops at "
                       "a data-dependent guard (the NMS loops)",
    ("jax", "onnx"): "Keras converts JAX to ONNX with jax2onnx, not a dependency; jax2onnx "
                     "0.17 fails on the graph (its jnp.arange in ZeroOutsideWindow)",
}

#: Why known unconvertible TensorFlow ops appear in the graph (ONNX export).
_ONNX_OP_CAUSES = {
    "Bitcast": "keras.ops.argmax of floats on TensorFlow (its negative-zero test, signbit)",
    "BitwiseAnd": "keras.ops.argmax of floats on TensorFlow (its negative-zero test, signbit)",
}

#: The settings a loader needs (Config names), written into the metadata.
CONFIG_KEYS = ("NAME", "NUM_CLASSES", "BATCH_SIZE", "IMAGE_SHAPE", "IMAGE_CHANNEL_COUNT",
               "IMAGE_RESIZE_MODE", "IMAGE_MIN_DIM", "IMAGE_MAX_DIM", "IMAGE_MIN_SCALE",
               "IMAGE_SCALE", "MEAN_PIXEL", "MASK_SHAPE", "DETECTION_MAX_INSTANCES",
               "DETECTION_MIN_CONFIDENCE", "DETECTION_MASK_THRESHOLD", "DETECTION_MASK_PASTE",
               "MASK_BOX_SCALE")

SIGNATURE = {
    "endpoint": "serve",
    "inputs": {
        "images": "float32 [B, H, W, C] pixel values (0..255), resized and padded to "
                  "image_shape; the mean pixel is subtracted inside",
        "windows": "float32 [B, 4] (y1, x1, y2, x2) of the real image in each input, "
                   "pixels, y2/x2 exclusive",
    },
    "outputs": {
        "boxes": "float32 [B, N, 4] (y1, x1, y2, x2) in input pixels, y2/x2 exclusive",
        "class_ids": "int32 [B, N], 0 for empty rows",
        "scores": "float32 [B, N]",
        "masks": "float32 [B, N, m, m] probabilities of each detection's class inside "
                 "its box",
        "num_detections": "int32 [B]",
    },
}


def _backend():
    return keras.backend.backend()


def check_export(model, path, format, overwrite=False):
    """Validate an export request before anything is written.

    Raises:
        TypeError: `model` is not a MaskRCNN.
        ValueError: unknown format, a training-mode model, a format this
            backend cannot write (the message names the ones it can).
        FileExistsError: `path` exists and `overwrite` is False.
    """
    if not all(hasattr(model, a) for a in ("keras_model", "config", "mode")):
        raise TypeError(f"model must be a mrcnn MaskRCNN (not its keras_model), got "
                        f"{type(model).__name__}")
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose one of {FORMATS}")
    if model.mode != "inference":
        raise ValueError(f"export needs a model built with mode='inference', got mode "
                         f"{model.mode!r}: build MaskRCNN('inference', config, model_dir) "
                         f"and load the trained weights into it")
    backend = _backend()
    if format not in SUPPORTED.get(backend, ()):
        why = _WHY_NOT.get((backend, format), "not supported")
        raise ValueError(f"format {format!r} cannot be exported from the {backend!r} backend "
                         f"({why}); from {backend!r} use format "
                         f"{' or '.join(repr(f) for f in SUPPORTED.get(backend, ()))}, or "
                         f"export with KERAS_BACKEND=tensorflow (every format)")
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"{os.fspath(path)!r} exists; choose a new path or pass "
                              f"overwrite=True")
    if os.path.isdir(path) and not os.path.exists(os.path.join(path, "saved_model.pb")):
        raise FileExistsError(f"{os.fspath(path)!r} is a folder that holds no SavedModel; "
                              f"overwrite replaces only an earlier export: choose a new path")
    if (format == "onnx" and model.config.MIXED_PRECISION != "auto"
            and resolve(model.config.MIXED_PRECISION, model.config.BACKBONE)):
        raise ValueError(f"ONNX export needs a float32 model; this one has MIXED_PRECISION="
                         f"{model.config.MIXED_PRECISION!r} (here "
                         f"{resolve(model.config.MIXED_PRECISION, model.config.BACKBONE)}): build the inference model with "
                         f"MIXED_PRECISION=None (the weights load unchanged)")


def float32_twin(model):
    """`model` rebuilt in float32 with its weights (MIXED_PRECISION keeps variables float32).

    An exported ONNX graph must be float32 whatever the machine that exports it;
    ``MIXED_PRECISION = "auto"`` (the default) is a choice of the machine, so
    `export_model` exports this twin instead of refusing.
    """
    config = copy.copy(model.config)
    config.MIXED_PRECISION = None
    twin = type(model)("inference", config, model.model_dir)
    twin.keras_model.set_weights(model.keras_model.get_weights())
    return twin


def export_model(model, path, format="tf_saved_model", class_names=None, overwrite=False,
                 verbose=False):
    """Write a MaskRCNN inference model as `format` to `path`, with its metadata.

    Args:
        model: a `MaskRCNN` built with mode="inference" (trained weights loaded).
        path: the SavedModel folder, or the ``.onnx`` / ``.keras`` file.
        format: "tf_saved_model", "onnx" or "keras" (see `FORMATS`).
        class_names: names of the classes, background first (default:
            Config.CLASS_NAMES if the config has it).
        overwrite: replace an existing `path`.
        verbose: let Keras print its export messages.

    Returns:
        the metadata dict (also written beside the model, `metadata_path`).
    """
    check_export(model, path, format, overwrite)
    if format == "onnx" and resolve(model.config.MIXED_PRECISION, model.config.BACKBONE):
        model = float32_twin(model)      # "auto" chose 16 bits here; ONNX gets float32
    path = os.fspath(path)
    if format == "keras" and not path.endswith(".keras"):
        raise ValueError(f"a '.keras' export needs a path ending in '.keras', got {path!r}")
    info = export_info(model.config, format, class_names)
    # written beside `path` first: a failed export leaves an earlier one as it was
    folder, name = os.path.split(os.path.abspath(path))
    partial = os.path.join(folder, ".partial-" + name)
    os.makedirs(folder, exist_ok=True)
    _remove(partial)
    try:
        if format == "keras":
            plain = keras.Model(model.keras_model.inputs, model.keras_model.outputs,
                                name=model.keras_model.name)
            plain.save(partial)
        else:
            _export_serving(serving_model(model.keras_model, info["config"]), partial, format,
                            verbose)
        with open(metadata_path(partial, format), "w") as f:
            json.dump(info, f, indent=1)
    except BaseException:
        _remove(partial)
        _remove(metadata_path(partial, format))
        raise
    _remove(path)
    os.replace(partial, path)
    if format != "tf_saved_model":                      # the metadata file lies beside
        os.replace(metadata_path(partial, format), metadata_path(path, format))
    return info


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def _export_serving(serving, path, format, verbose):
    """Keras' export of the serving model, with a static input signature."""
    signature = [[keras.InputSpec(shape=x.shape, dtype="float32", name=x.name)
                  for x in serving.inputs]]
    if _backend() == "jax":
        with _stablehlo_readable_by_tensorflow():
            try:
                serving.export(path, format=format, verbose=verbose, input_signature=signature)
            except Exception as error:
                import tensorflow as tf

                raise ValueError(
                    f"the SavedModel written from JAX cannot run on TensorFlow {tf.__version__} "
                    f"({str(error).strip().splitlines()[0][:300]}); export with "
                    f"KERAS_BACKEND=tensorflow, or format='keras'") from error
    else:
        serving.export(path, format=format, verbose=verbose, input_signature=signature)
    if format == "onnx":
        bad = unsupported_onnx_ops(path)
        if bad:
            causes = sorted({_ONNX_OP_CAUSES[op] for op in bad if op in _ONNX_OP_CAUSES})
            ops_found = ", ".join(f"{op} (in {name})" for op, name in sorted(bad.items()))
            origin = f"; they come from {'; '.join(causes)}" if causes else ""
            raise ValueError(f"ONNX export failed: the converter left TensorFlow ops that "
                             f"ONNX does not have: {ops_found}{origin}. Use format="
                             f"'tf_saved_model' or 'keras'")


@contextlib.contextmanager
def _stablehlo_readable_by_tensorflow():
    """JAX backend: serialize the model's StableHLO for a 12-week-old consumer, not 4.

    jax2tf (Keras' SavedModel path on JAX) embeds the computation as a
    StableHLO artifact that TensorFlow's XLA deserializes when it runs.
    JAX targets the StableHLO version of 4 weeks ago, which can be newer than
    the one TensorFlow reads: with jax 0.10.2 and TensorFlow 2.21 the
    ``top_k`` of the proposal layer became ``vhlo.composite_v2``, unknown to
    TensorFlow's StableHLO 1.13.7 ("failed to deserialize portable
    artifact"). Targeting 12 weeks back gives 1.13.7, which runs (measured:
    the same detections as the library). Uses JAX internals; where they
    differ (another JAX version) Keras' default is kept.
    """
    try:
        from jax._src import xla_bridge
        from jax._src.export import _export
        from jax._src.lib import _jax
        from jax._src.lib.mlir.dialects import hlo

        requirement = hlo.StablehloCompatibilityRequirement.WEEK_12
        original = _export._module_to_bytecode
    except (ImportError, AttributeError):
        yield
        return

    def module_to_bytecode(module):
        version = hlo.get_version_from_compatibility_requirement(requirement)
        return _jax.mlir.serialize_portable_artifact(
            module, version, xla_bridge.get_backend().serialize_with_sdy)

    _export._module_to_bytecode = module_to_bytecode
    try:
        yield
    finally:
        _export._module_to_bytecode = original


def unsupported_onnx_ops(path):
    """``{op_type: node name}`` of the nodes of an ONNX file that its opset does not define.

    tf2onnx writes TensorFlow ops it cannot convert as they are (and logs
    "Unsupported ops"); ONNX Runtime then refuses the file. Subgraphs
    (Loop / If bodies) are searched too.
    """
    import onnx

    model = onnx.load(path)
    opset = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    bad = {}

    def defined(op_type):
        try:
            onnx.defs.get_schema(op_type, opset.get("ai.onnx", 1), "")
            return True
        except onnx.defs.SchemaError:
            return False

    def visit(graph):
        for node in graph.node:
            if node.domain in ("", "ai.onnx") and not defined(node.op_type):
                bad.setdefault(node.op_type, node.name)
            for attr in node.attribute:
                for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    visit(sub)

    visit(model.graph)
    return bad


def metadata_path(path, format):
    """Where the metadata of an export at `path` lives (inside a SavedModel, else beside)."""
    path = os.fspath(path)
    if format == "tf_saved_model":
        return os.path.join(path, METADATA_NAME)
    return path + ".json"


def export_info(config, format, class_names=None):
    """The metadata dict of an export: format, versions, the loader's settings, the signature."""
    import mrcnn

    names = class_names if class_names is not None else getattr(config, "CLASS_NAMES", None)
    if names is not None and len(names) != config.NUM_CLASSES:
        raise ValueError(f"class_names has {len(names)} names for NUM_CLASSES="
                         f"{config.NUM_CLASSES} (background first): {list(names)!r}")
    settings = {k: jsonable(getattr(config, k)) for k in CONFIG_KEYS}
    settings["CLASS_NAMES"] = None if names is None else [str(n) for n in names]
    return {"format": format, "library": "mrcnn-keras3", "version": mrcnn.__version__,
            "keras_version": keras.__version__, "backend": _backend(),
            "config": settings, "signature": SIGNATURE}


def serving_model(keras_model, settings):
    """The serving function as a Keras model: ``[images, windows]`` -> the outputs dict.

    Args:
        keras_model: the inference graph (`mrcnn.graph.build_inference_graph`).
        settings: the ``config`` part of `export_info` (IMAGE_SHAPE,
            BATCH_SIZE, MEAN_PIXEL, NUM_CLASSES).
    """
    h, w, c = (int(v) for v in settings["IMAGE_SHAPE"])
    batch = int(settings["BATCH_SIZE"])
    images = keras.Input((h, w, c), batch_size=batch, name="images")
    windows = keras.Input((4,), batch_size=batch, name="windows")
    molded, meta = ServingInputs(settings["MEAN_PIXEL"], (h, w, c), settings["NUM_CLASSES"],
                                 name="serving_inputs")([images, windows])
    outputs = keras_model([molded, meta])
    boxes, class_ids, scores, masks, count = ServingOutputs(
        (h, w), name="serving_outputs")([outputs[0], outputs[3]])
    return keras.Model([images, windows],
                       {"boxes": boxes, "class_ids": class_ids, "scores": scores,
                        "masks": masks, "num_detections": count},
                       name="mask_rcnn_serving")


@keras.saving.register_keras_serializable(package="mrcnn")
class ServingInputs(keras.layers.Layer):
    """[images (pixels), windows] -> [molded images, image metas] of the inference graph.

    Subtracts the mean pixel and builds each image meta
    (`mrcnn.data.image_meta`) from its window: the inference graph reads
    only the window; the shapes are the input's, the scale 1, every class
    active.

    Args:
        mean_pixel: [C] mean pixel (Config.MEAN_PIXEL).
        image_shape: (H, W, C) of the model input.
        num_classes: Config.NUM_CLASSES.
    """

    def __init__(self, mean_pixel, image_shape, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.mean_pixel = [float(v) for v in np.ravel(mean_pixel)]
        self.image_shape = [int(v) for v in image_shape]
        self.num_classes = int(num_classes)

    def call(self, inputs):
        images, windows = inputs
        molded = ops.cast(images, "float32") - ops.convert_to_tensor(self.mean_pixel, "float32")
        windows = ops.cast(windows, "float32")
        rows = ops.ones_like(windows[:, :1])                                     # [B, 1]
        head = ops.convert_to_tensor([[0.0] + self.image_shape * 2], "float32")  # id, shapes
        tail = ops.ones((1, 1 + self.num_classes), "float32")                  # scale, classes
        meta = ops.concatenate([rows * head, windows, rows * tail], axis=1)
        return molded, meta

    def compute_output_shape(self, input_shape):
        images, windows = input_shape
        return tuple(images), (windows[0], 12 + self.num_classes)

    def compute_output_spec(self, inputs):
        images, windows = inputs
        return (keras.KerasTensor(images.shape, "float32"),
                keras.KerasTensor((windows.shape[0], 12 + self.num_classes), "float32"))

    def get_config(self):
        return {**super().get_config(), "mean_pixel": self.mean_pixel,
                "image_shape": self.image_shape, "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="mrcnn")
class ServingOutputs(keras.layers.Layer):
    """[detections, mask probabilities] -> pixel boxes, class ids, scores, class masks, counts.

    ``detections`` are the inference graph's ``[B, N, (y1, x1, y2, x2,
    class_id, score)]`` (normalized); ``masks`` ``[B, N, m, m, NUM_CLASSES]``.
    Boxes become input pixels as ``mrcnn.inference.molding`` does
    (``box * [H - 1, W - 1, H - 1, W - 1] + [0, 0, 1, 1]``); each mask is its
    detection's class channel; empty rows are all zero.

    Args:
        image_shape: (H, W) of the model input.
    """

    def __init__(self, image_shape, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = [int(v) for v in image_shape[:2]]

    def call(self, inputs):
        detections, masks = (ops.cast(x, "float32") for x in inputs)
        h, w = self.image_shape
        class_ids = ops.cast(detections[..., 4], "int32")
        found = class_ids > 0
        scale = ops.convert_to_tensor([h - 1, w - 1, h - 1, w - 1], "float32")
        shift = ops.convert_to_tensor([0, 0, 1, 1], "float32")
        boxes = ops.where(found[..., None], detections[..., :4] * scale + shift, 0.0)
        one_hot = ops.one_hot(class_ids, masks.shape[-1], dtype="float32")
        class_masks = ops.sum(masks * one_hot[:, :, None, None, :], axis=-1)
        class_masks = ops.where(found[..., None, None], class_masks, 0.0)
        scores = ops.where(found, detections[..., 5], 0.0)
        count = ops.sum(ops.cast(found, "int32"), axis=1)
        return boxes, class_ids, scores, class_masks, count

    def compute_output_shape(self, input_shape):
        detections, masks = input_shape
        b, n = tuple(detections[:2])
        return (b, n, 4), (b, n), (b, n), (b, n) + tuple(masks[2:4]), (b,)

    def compute_output_spec(self, inputs):
        shapes = self.compute_output_shape([x.shape for x in inputs])
        dtypes = ("float32", "int32", "float32", "float32", "int32")
        return tuple(keras.KerasTensor(s, d) for s, d in zip(shapes, dtypes))

    def get_config(self):
        return {**super().get_config(), "image_shape": self.image_shape}

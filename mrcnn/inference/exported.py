"""Detection with an exported model (`mrcnn.inference.export`), without building the Keras model.

    from mrcnn.inference.exported import load_exported
    model = load_exported("exported/cell")          # a SavedModel folder, .onnx or .keras file
    r = model.detect([image])[0]                     # rois, class_ids, scores, masks [H, W, N]

`load_exported` reads the metadata written beside the export and returns an
`ExportedModel` whose ``detect`` works like ``MaskRCNN.detect``: images of any
size are fitted to the input in NumPy (`mrcnn.data.fit.fit_image`, the
library's own resize and padding), run through the exported function
(TensorFlow's ``tf.saved_model.load``, ONNX Runtime, or Keras for a `.keras`
file) and unmolded with `mrcnn.inference.molding.unmold_result` (masks pasted
at the original size). ``model.config`` holds the settings the export wrote
(IMAGE_SHAPE, MEAN_PIXEL, DETECTION_MASK_THRESHOLD, CLASS_NAMES, ...), so code
that reads a model's config (the cell sample's post-processing) works too.
"""

import json
import os
import types

import numpy as np

from mrcnn.data.fit import fit_image
from mrcnn.inference import export as export_lib
from mrcnn.inference.molding import unmold_result

OUTPUT_NAMES = ("boxes", "class_ids", "scores", "masks", "num_detections")


def find_format(path):
    """The export format of `path`: a SavedModel folder, a ``.onnx`` or a ``.keras`` file.

    Raises:
        FileNotFoundError: nothing at `path`, or a folder without ``saved_model.pb``.
        ValueError: a file of another kind.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        if not os.path.exists(os.path.join(path, "saved_model.pb")):
            raise FileNotFoundError(f"{path!r} is a folder without saved_model.pb: not a "
                                    f"SavedModel written by mrcnn.inference.export")
        return "tf_saved_model"
    if not os.path.exists(path):
        raise FileNotFoundError(f"no exported model at {path!r} (expected a SavedModel "
                                f"folder, a .onnx or a .keras file)")
    for ending, format in ((".onnx", "onnx"), (".keras", "keras")):
        if path.endswith(ending):
            return format
    raise ValueError(f"{path!r} is not an exported model: expected a SavedModel folder, a "
                     f".onnx or a .keras file")


def read_metadata(path, format=None):
    """The metadata dict `export_model` wrote for the export at `path`."""
    format = format or find_format(path)
    meta_path = export_lib.metadata_path(path, format)
    if not os.path.exists(meta_path):
        raise FileNotFoundError(f"{meta_path!r} is missing: the metadata of the export at "
                                f"{os.fspath(path)!r} (export it with "
                                f"mrcnn.inference.export.export_model)")
    with open(meta_path) as f:
        info = json.load(f)
    if info.get("format") != format:
        raise ValueError(f"{meta_path!r} describes a {info.get('format')!r} export, but "
                         f"{os.fspath(path)!r} is {format!r}")
    return info


def load_exported(path):
    """An `ExportedModel` of the export at `path` (format found from the path)."""
    format = find_format(path)
    info = read_metadata(path, format)
    runner = {"tf_saved_model": _saved_model_runner, "onnx": _onnx_runner,
              "keras": _keras_runner}[format](os.fspath(path), info)
    return ExportedModel(info, runner, os.fspath(path))


class ExportedModel:
    """An exported Mask R-CNN with ``MaskRCNN.detect``'s interface.

    Attributes:
        config: a namespace of the settings the export wrote (Config names).
        info: the whole metadata dict; path: the export's path.
        format: "tf_saved_model", "onnx" or "keras".
    """

    mode = "inference"

    def __init__(self, info, runner, path):
        self.info, self.path, self.format = info, path, info["format"]
        settings = dict(info["config"])
        settings["IMAGE_SHAPE"] = np.array(settings["IMAGE_SHAPE"])
        settings["MEAN_PIXEL"] = np.array(settings["MEAN_PIXEL"])
        self.config = types.SimpleNamespace(**settings)
        self._run = runner

    def __repr__(self):
        return (f"<ExportedModel {self.format} {self.path!r} input "
                f"{[int(v) for v in self.config.IMAGE_SHAPE]} batch {self.config.BATCH_SIZE}>")

    def fit_inputs(self, images):
        """Images of any size -> (float32 [n, H, W, C] pixel inputs, float32 [n, 4] windows)."""
        channels = self.config.IMAGE_CHANNEL_COUNT
        fitted, windows = [], []
        for image in images:
            image = np.asarray(image)
            if image.ndim == 2:
                image = np.stack([image] * 3, axis=-1)
            if image.ndim != 3 or image.shape[-1] != channels:
                raise ValueError(f"images must be [H, W, {channels}] arrays, got shape "
                                 f"{image.shape}")
            out, window, _, _, _ = fit_image(image, self.config, training=False)
            fitted.append(out.astype(np.float32))
            windows.append(window)
        return np.stack(fitted), np.asarray(windows, np.float32)

    def run(self, images, windows):
        """The exported function on up to BATCH_SIZE fitted images: its outputs dict (NumPy)."""
        n, b = len(images), int(self.config.BATCH_SIZE)
        if n > b:
            raise ValueError(f"got {n} images for an export with batch size {b}")
        batch = np.zeros((b,) + tuple(int(v) for v in self.config.IMAGE_SHAPE), np.float32)
        boxes = np.tile(np.array([[0, 0, batch.shape[1], batch.shape[2]]], np.float32), (b, 1))
        batch[:n], boxes[:n] = images, windows
        return {k: np.asarray(v) for k, v in self._run(batch, boxes).items()}

    def detect(self, images, verbose=0, soft_masks=False, sparse=False):
        """Detect instances: the result dicts of ``MaskRCNN.detect`` (same arguments).

        Returns:
            one dict per image: ``rois`` int32 [N, (y1, x1, y2, x2)] original
            pixels, ``class_ids``, ``scores``, ``masks`` bool [H, W, N] (and
            ``soft_masks`` float32 [H, W, N] with `soft_masks`).
        """
        images, results, b = list(images), [], int(self.config.BATCH_SIZE)
        for start in range(0, len(images), b):
            chunk = images[start:start + b]
            fitted, windows = self.fit_inputs(chunk)
            out = self.run(fitted, windows)
            if verbose:
                print(f"{self.format} export: {len(chunk)} images, "
                      f"{out['num_detections'][:len(chunk)].tolist()} detections")
            for i, image in enumerate(chunk):
                detections, masks = self._as_graph_outputs(out, i)
                results.append(unmold_result(
                    detections, masks, np.shape(image), fitted.shape[1:], windows[i],
                    self.config.DETECTION_MASK_THRESHOLD, soft_masks, sparse,
                    getattr(self.config, "DETECTION_MASK_PASTE", "centers"),
                    getattr(self.config, "MASK_BOX_SCALE", 1.0)))
        return results

    def _as_graph_outputs(self, out, i):
        """Image i's outputs as the inference graph's (detections [N, 6], masks [N, m, m, C])."""
        h, w = (int(v) for v in self.config.IMAGE_SHAPE[:2])
        boxes = (out["boxes"][i].astype(np.float64) - [0, 0, 1, 1]) / [h - 1, w - 1, h - 1, w - 1]
        class_ids = out["class_ids"][i]
        detections = np.concatenate([boxes, class_ids[:, None], out["scores"][i][:, None]], 1)
        masks = np.zeros(out["masks"].shape[1:] + (int(self.config.NUM_CLASSES),), np.float32)
        rows = np.flatnonzero(class_ids > 0)
        masks[rows, :, :, class_ids[rows]] = out["masks"][i][rows]
        return detections, masks


def _saved_model_runner(path, info):
    import tensorflow as tf

    serve = tf.saved_model.load(path).signatures["serving_default"]

    def run(images, windows):
        out = serve(images=tf.constant(images), windows=tf.constant(windows))
        return {k: out[k].numpy() for k in OUTPUT_NAMES}
    return run


def _onnx_runner(path, info):
    try:
        import onnxruntime
    except ImportError:
        raise ImportError(f"{path!r} is an ONNX model: running it needs onnxruntime "
                          f"(pip install onnxruntime, or mrcnn-keras3[export])") from None
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]

    def run(images, windows):
        feed = {i.name: (images if "image" in i.name else windows) for i in session.get_inputs()}
        return dict(zip(names, session.run(None, feed)))
    return run


def _keras_runner(path, info):
    import keras

    from mrcnn import graph as _registers_layers  # noqa: F401  (layers for load_model)
    from mrcnn.layers.batch_norm_fold import fold_batch_norms

    inference_graph = keras.saving.load_model(path)
    fold_batch_norms(inference_graph)       # as MaskRCNN builds it: the same numbers
    serving = export_lib.serving_model(inference_graph, info["config"])

    def run(images, windows):
        return serving.predict_on_batch([images, windows])
    return run

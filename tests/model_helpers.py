"""Small configs and datasets shared by the model tests."""

import numpy as np

from mrcnn.config import Config
from mrcnn.datasets.shapes import ShapesDataset


class TinyConfig(Config):
    NAME = "tiny"
    NUM_CLASSES = 1 + 3
    IMAGES_PER_GPU = 2
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    BACKBONE = "small-cnn"
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    TRAIN_ROIS_PER_IMAGE = 16
    PRE_NMS_LIMIT = 200
    POST_NMS_ROIS_TRAINING = 50
    POST_NMS_ROIS_INFERENCE = 30
    RPN_TRAIN_ANCHORS_PER_IMAGE = 32
    MAX_GT_INSTANCES = 5
    DETECTION_MAX_INSTANCES = 8
    MINI_MASK_SHAPE = (28, 28)
    FPN_CLASSIF_FC_LAYERS_SIZE = 32
    TOP_DOWN_PYRAMID_SIZE = 32
    MASK_HEAD_CHANNELS = 32
    STEPS_PER_EPOCH = 3
    VALIDATION_STEPS = 2
    LEARNING_RATE = 0.01
    DETECTION_MIN_CONFIDENCE = 0.0


def make_config(**overrides):
    return type("TestConfig", (TinyConfig,), overrides)()


def shapes(count=8, size=64, seed=0):
    ds = ShapesDataset()
    ds.load_shapes(count, size, size, seed=seed, max_shapes=3)
    ds.prepare()
    return ds


def as_numpy(x):
    return np.asarray(x)


def confident_heads(model, class_id=1, score=0.6, mask_probability=0.88):
    """Make an (untrained) inference model's detections predictable, in place.

    The class head scores every ROI `score` for `class_id` (the rest shared by
    the other classes) and the mask head says `mask_probability` everywhere in
    the box: every ROI is a detection with a full-box mask, whatever the
    random initialisation. Tests of the scripts' plumbing use it so that their
    outcome does not hang on an untrained model happening to find something.
    """
    n = model.config.NUM_CLASSES
    probs = np.full(n, (1.0 - score) / (n - 1))
    probs[class_id] = score
    for name, bias in (("mrcnn_class_logits", np.log(probs)),
                       ("mrcnn_mask", np.full(n, np.log(mask_probability / (1 - mask_probability))))):
        layer = model.keras_model.get_layer(name)
        kernel, _ = layer.get_weights()
        layer.set_weights([np.zeros_like(kernel), bias.astype(np.float32)])
    return model


def pin_loaded_models(monkeypatch, predict_module, **kwargs):
    """predict.py's `_load_model` returns models with `confident_heads` (see there)."""
    original = predict_module._load_model

    def load(args, path):
        return confident_heads(original(args, path), **kwargs)

    monkeypatch.setattr(predict_module, "_load_model", load)


def fixed_roi_sampling():
    """DetectionTargetLayer draws 1 - index / M instead of uniform noise: a per-image order.

    For comparing data-parallel TensorFlow runs with one device
    (tests/distribute/dp_equivalence.py, multiprocess_job.py): each replica
    would draw its own random numbers; a fixed order gives every image the
    same ROIs in both runs.
    """
    import types

    import keras
    from keras import ops

    from mrcnn.layers import detection_targets

    def uniform(shape, seed=None):
        order = 1.0 - ops.arange(shape[1], dtype="float32") / shape[1]
        return ops.broadcast_to(order[None, :], shape)

    names = {n: getattr(keras, n) for n in dir(keras) if not n.startswith("__")}
    names["random"] = types.SimpleNamespace(SeedGenerator=keras.random.SeedGenerator,
                                            uniform=uniform)
    detection_targets.keras = types.SimpleNamespace(**names)


def first_step_recorder():
    """A Keras callback keeping the weights (``.weights``) and logs (``.logs``) after step 1.

    For comparing data-parallel training with one device: the first step
    starts both from the same weights, so it can be held to float rounding;
    later steps can take a near-tied discrete choice (proposal ranking, NMS,
    ROI labels) differently (tests/distribute/test_data_parallel.py). Reading
    ``self.model`` syncs JAX's training state into the variables.
    """
    import keras

    class FirstStep(keras.callbacks.Callback):
        weights = logs = None

        def on_train_batch_end(self, batch, logs=None):
            if batch == 0 and self.weights is None:
                self.weights = self.model.get_weights()
                self.logs = {k: float(v) for k, v in (logs or {}).items()}

    return FirstStep()

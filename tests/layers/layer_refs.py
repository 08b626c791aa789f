"""Loop references and a compiled runner shared by the graph-layer tests.

Boxes are ``(y1, x1, y2, x2)`` (normalized in these tests); the loops are
deliberately plain Python so that they check the vectorized layers.
"""

import math

import keras
import numpy as np


def np_iou(a, b):
    """IoU of two boxes; 0 when the union is empty."""
    ih = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iw = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ih * iw
    union = ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
             - inter)
    return inter / union if union > 0 else 0.0


def np_apply_delta(box, delta):
    """One box moved by ``(dy, dx, log(dh), log(dw))`` (already times the std dev)."""
    h, w = box[2] - box[0], box[3] - box[1]
    cy, cx = box[0] + 0.5 * h + delta[0] * h, box[1] + 0.5 * w + delta[1] * w
    h, w = h * math.exp(delta[2]), w * math.exp(delta[3])
    return [cy - 0.5 * h, cx - 0.5 * w, cy + 0.5 * h, cx + 0.5 * w]


def run_compiled(layer, inputs):
    """Runs the layer in a compiled model (tf.function / jax.jit).

    Faster than eager op-by-op dispatch on JAX, and checks jit
    compatibility. ``inputs``: list of arrays (static batch size and dtypes
    are taken from them). Returns one NumPy array, or a list of them.
    """
    inputs = [np.asarray(x) for x in inputs]
    symbolic = [keras.Input(shape=x.shape[1:], batch_size=x.shape[0],
                            dtype=str(x.dtype)) for x in inputs]
    model = keras.Model(symbolic, layer(symbolic))
    outputs = model.predict_on_batch(inputs)
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(x) for x in outputs]
    return np.asarray(outputs)

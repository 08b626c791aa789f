"""Choice between a backend's native kernel and the generic keras.ops one.

On the TensorFlow backend the native kernels (tf.image.non_max_suppression,
tf.image.crop_and_resize) are faster when not compiled with XLA; they have no
XLA lowering, so inside a jit_compile trace the generic path is used.
"""

import os

import keras

METHODS = (None, "native", "generic")
TRAIN_MASK_BUCKETS = ("auto", "on", "off")


def native_available():
    """True on the TensorFlow backend outside an XLA (jit_compile) trace.

    The native TF kernels have no XLA lowering, so under
    ``tf.function(jit_compile=True)`` (Keras' default ``jit_compile="auto"``)
    ``method=None`` falls back to the generic path.
    """
    if keras.backend.backend() != "tensorflow":
        return False
    try:
        import tensorflow as tf
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - private TF module moved
        return True
    graph = tf.compat.v1.get_default_graph()
    return not control_flow_util.GraphOrParentsInXlaContext(graph)


def dynamic_shapes_available():
    """True where a tensor's size may vary from step to step without a recompilation.

    TensorFlow outside an XLA trace (its graph executor takes any size) and
    PyTorch (eager); not JAX, whose jitted steps have static shapes (a new
    size is a new compilation), nor TensorFlow under ``jit_compile=True``.
    """
    backend = keras.backend.backend()
    return backend == "torch" or (backend == "tensorflow" and native_available())


def switch_trains_fast():
    """Whether a training step may run the mask head inside a ``keras.ops.switch`` branch.

    True on JAX with an accelerator. False on XLA:CPU, where the gradient of a
    convolution's kernel inside a conditional takes another code path: 16
    rows of the mask head's four 3x3 convolutions took 18.8 s for that
    gradient in a ``lax.cond`` against 2.8 s for all 128 rows outside one
    (forward and input gradient were fast; benchmarks/RESULTS.md). Also False
    off JAX (TensorFlow and PyTorch run the head on the varying count instead).

    The environment variable ``MRCNN_TRAIN_MASK_BUCKETS`` overrides the
    choice on JAX: ``on`` / ``off`` (``auto``, the default, is the rule
    above); benchmarks/gpu_suite.py measures both on a GPU this way.
    """
    if keras.backend.backend() != "jax":
        return False
    override = os.environ.get("MRCNN_TRAIN_MASK_BUCKETS", "auto").strip().lower()
    if override not in TRAIN_MASK_BUCKETS:
        raise ValueError(
            f"MRCNN_TRAIN_MASK_BUCKETS must be one of {TRAIN_MASK_BUCKETS}; got {override!r}."
        )
    if override != "auto":
        return override == "on"
    import jax
    return jax.default_backend() != "cpu"


def resolve_method(method):
    if method not in METHODS:
        raise ValueError(
            f"`method` must be one of {METHODS}; got {method!r}."
        )
    if method is None:
        return "native" if native_available() else "generic"
    if method == "native" and keras.backend.backend() != "tensorflow":
        raise ValueError(
            "method='native' needs the TensorFlow backend; the current "
            f"Keras backend is {keras.backend.backend()!r}. Use "
            "method='generic' or method=None."
        )
    return method

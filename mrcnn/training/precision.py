"""Mixed precision: which parts of the model compute in 16 bits.

``Config.MIXED_PRECISION`` = ``"bfloat16"`` or ``"float16"`` builds the
convolutional trunk (backbone, FPN, the RPN's shared conv, the box and mask
heads' conv/BN stages) under Keras' ``mixed_bfloat16`` / ``mixed_float16``
dtype policy: variables stay float32, convolutions run in 16 bits. Everything
that holds coordinates or probabilities stays float32: anchors, proposals,
detection targets, ROIAlign (it samples 16-bit feature maps into float32
crops), the final logit / delta / mask layers, softmax, the detection layer
and the losses. A 16-bit box coordinate would be off by up to 4 pixels at
1024 px (bfloat16 keeps 8 significant bits).

``"float16"`` needs loss scaling: Keras wraps the optimizer in a
``LossScaleOptimizer`` when the model's policy is ``mixed_float16``; here the
trainer asks for it explicitly (see ``MaskRCNN.compile``).

``"auto"`` picks the precision that is free on the machine the model is
built on (``resolve``): bfloat16 on GPUs with native bfloat16 (compute
capability 8.0 on: A100, L4, H100) and on TPUs; float16 with loss scaling on
older GPUs (compute capability 6.0-7.5: P100, V100, T4, Kaggle's GPUs);
float32 on anything else. On a CPU it picks bfloat16 only where it was
measured faster (benchmarks/RESULTS.md): the TensorFlow backend, a large
backbone (ResNet, EfficientNetV2) and a CPU whose bfloat16 is fast, AMX-BF16
(Intel's matrix unit: on an Emerald Rapids Xeon a ResNet50 512x512 training
step 1.16 s in bfloat16, 2.32 s in float32) or AMD's AVX512-BF16 (Zen 4: 2.60 s
in bfloat16, 6.58 s in float32). AVX512-BF16 alone on an Intel Xeon
without AMX made the same step slower (5.5 s vs 3.3 s), small convolutions
gain nothing (``small-cnn`` at 256x256: 1.06 s a step in bfloat16, 0.64 s in
float32), and XLA's CPU bfloat16 convolutions (JAX) were not measured faster.
"""

import contextlib
import re

import keras

from mrcnn.cpuinfo import cpu_features

POLICIES = {None: None, False: None, "bfloat16": "mixed_bfloat16",
            "float16": "mixed_float16"}


SETTINGS = (None, False, "auto", "bfloat16", "float16")

# Backbones whose training and detect steps were measured faster in bfloat16 on
# a CPU with native bfloat16 (TensorFlow, 512x512: ResNet50 2.60 s vs 6.58 s).
CPU_BFLOAT16_BACKBONES = re.compile(r"^(resnet\d+|efficientnetv2-\w+)$")


def resolve(setting, backbone=None, backend=None, device=None):
    """What a ``Config.MIXED_PRECISION`` value means here: None (float32), "bfloat16" or "float16".

    Args:
        setting: None/False, "bfloat16", "float16" (returned as they are) or "auto".
        backbone: ``Config.BACKBONE`` (a registered name or a callable); "auto" on a
            CPU picks bfloat16 for ResNet and EfficientNetV2 backbones only.
        backend: the Keras backend (default: the current one).
        device: for tests and tools, the device to decide for instead of this
            machine's: ``("gpu", (major, minor))``, ``("tpu", None)`` or
            ``("cpu", bfloat16_is_fast)``.

    Raises:
        ValueError: for any other setting.
    """
    if setting not in SETTINGS:
        raise ValueError(f"MIXED_PRECISION must be None, 'auto', 'bfloat16' or 'float16', "
                         f"got {setting!r}")
    if setting != "auto":
        return setting or None
    backend = backend or keras.backend.backend()
    kind, detail = device or _device(backend)
    if kind == "tpu":
        return "bfloat16"
    if kind == "gpu":
        if detail is None:
            return None
        if tuple(detail) >= (8, 0):
            return "bfloat16"
        return "float16" if tuple(detail) >= (6, 0) else None
    large = isinstance(backbone, str) and bool(CPU_BFLOAT16_BACKBONES.match(backbone))
    return "bfloat16" if detail and large and backend == "tensorflow" else None


def _device(backend):
    """("gpu", compute capability or None) / ("tpu", None) / ("cpu", fast bfloat16?)."""
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return "gpu", details.get("compute_capability")
        if tf.config.list_logical_devices("TPU"):
            return "tpu", None
    elif backend == "jax":
        import jax

        first = jax.devices()[0]
        if first.platform == "tpu":
            return "tpu", None
        if first.platform == "gpu":
            cc = getattr(first, "compute_capability", None)
            return "gpu", tuple(int(v) for v in str(cc).split(".")[:2]) if cc else None
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return "gpu", torch.cuda.get_device_capability(0)
    return "cpu", cpu_bfloat16_is_fast()


def cpu_bfloat16_is_fast(cpuinfo="/proc/cpuinfo"):
    """Whether this CPU's bfloat16 convolutions were measured faster than float32 (Linux).

    True for AMX-BF16 (Intel Sapphire Rapids and later, where the hypervisor
    exposes it) and for AMD CPUs with AVX512-BF16 (Zen 4 and later); False
    otherwise, also for Intel CPUs with AVX512-BF16 but no AMX (measured
    slower) and where /proc/cpuinfo cannot be read.
    """
    vendor, flags = cpu_features(cpuinfo)
    return "amx_bf16" in flags or (vendor == "AuthenticAMD" and "avx512_bf16" in flags)


def policy_name(setting):
    """Keras dtype-policy name for a ``Config.MIXED_PRECISION`` value (None: float32).

    Raises:
        ValueError: for anything but None, False, "bfloat16" or "float16"
            ("auto" must be resolved first: ``resolve``).
    """
    try:
        return POLICIES[setting]
    except (KeyError, TypeError):
        raise ValueError(
            f"MIXED_PRECISION must be None, 'bfloat16' or 'float16', got {setting!r}") from None


@contextlib.contextmanager
def compute_dtype(setting):
    """Layers created inside compute in 16 bits (``setting`` as in Config.MIXED_PRECISION).

    Restores the previous global dtype policy on exit, also on error, so that
    building a mixed-precision model never changes what the caller builds next.
    """
    name = policy_name(setting)
    if name is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)

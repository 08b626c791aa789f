"""The devices a backend trains on; virtual CPU devices to try data-parallel training without GPUs.

At the top of a script, before any model is built::

    from mrcnn.distribute import use_devices
    use_devices(2)          # 2 GPUs, or the CPU split into 2 virtual devices

On a machine with GPUs (or TPUs) `use_devices` checks that there are
enough. On a CPU-only machine it splits the CPU into `count` virtual devices
(JAX: ``jax_num_cpu_devices``, the same as ``XLA_FLAGS=
--xla_force_host_platform_device_count=N``; TensorFlow: logical CPU devices)
and prints a note: that tests the data-parallel mechanics, it does not
train faster. Either must happen before the backend has run anything; once
it has, only an environment variable set before Python starts helps (the
error says which).

`training_devices` lists what data-parallel training can use:
accelerators when there are any, else the CPU devices.
"""

import os

import keras

__all__ = ["training_devices", "use_devices", "virtual_cpu_hint"]


def _backend(backend):
    return backend or keras.backend.backend()


def training_devices(backend=None):
    """Names of the devices this process's backend trains on, e.g. ``["/device:GPU:0", ...]``.

    TensorFlow: its logical GPUs, else its logical CPUs; JAX: ``jax.devices()``
    (the default platform; every process's devices after
    ``jax.distributed.initialize``), named ``"<platform>:<id>"``; PyTorch: the
    CUDA devices, else ``["cpu"]``.
    """
    backend = _backend(backend)
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    if backend == "jax":
        import jax

        return [f"{d.platform}:{d.id}" for d in jax.devices()]
    if backend == "torch":
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [f"cuda:{i}" for i in range(count)] or ["cpu"]
    raise ValueError(f"unknown Keras backend {backend!r}; expected tensorflow, jax or torch")


def virtual_cpu_hint(count, backend=None):
    """How to get `count` virtual CPU devices on `backend` (for error messages)."""
    if _backend(backend) == "jax":
        return (f"call mrcnn.distribute.use_devices({count}) before JAX runs anything, or start "
                f"Python with XLA_FLAGS=--xla_force_host_platform_device_count={count}")
    return (f"call mrcnn.distribute.use_devices({count}) at the start of the script, before "
            f"TensorFlow runs anything (samples/cell/train.py --devices {count} does)")


def _check_count(count):
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"count must be an int (number of devices), got {count!r} "
                        f"({type(count).__name__})")
    if count < 1:
        raise ValueError(f"count must be >= 1 (number of devices), got {count}")


def use_devices(count, backend=None, verbose=True):
    """Make `count` devices available to this process for data-parallel training.

    Call it at the top of a script, before anything runs on the backend. In
    a job of several processes (`mrcnn.distribute.cluster`: JAX's
    ``KERAS_DISTRIBUTION_*`` variables, TensorFlow's ``TF_CONFIG``) `count`
    is this process's share (``cluster.local_count(GPU_COUNT)``), and the
    job is joined here (``cluster.initialize``), after the CPU is split and
    before any device is queried, as the engines need.

    Args:
        count: devices wanted in this process (GPUs, or virtual CPU devices
            without GPUs).
        backend: "tensorflow", "jax" or "torch" (default: Keras' backend).
        verbose: print a note when the CPU is split into virtual devices.

    Returns:
        the names of this process's devices (at least `count`).

    Raises:
        ValueError: fewer devices than `count` (naming those found and the
            way out), or PyTorch with ``count > 1`` (its backend trains on
            one device here: use JAX or TensorFlow, or one device with more
            images per step).
    """
    _check_count(count)
    backend = _backend(backend)
    if backend == "torch":
        if count > 1:
            raise ValueError(
                f"{count} devices requested, but data-parallel training is not available on "
                f"the PyTorch backend of this library: use KERAS_BACKEND=jax or "
                f"KERAS_BACKEND=tensorflow, or train on one device with IMAGES_PER_GPU={count} "
                f"x your images per device (GPU_COUNT=1)")
        return training_devices(backend)
    if backend == "jax":
        _split_cpu_jax(count)
    else:
        _split_cpu_tensorflow(count)
    from mrcnn.distribute import cluster

    cluster.initialize()
    devices, accelerators = _local_devices(backend)
    if len(devices) < count:
        raise ValueError(f"{count} devices requested but this {backend} process sees "
                         f"{len(devices)}: {', '.join(devices)}; "
                         f"{virtual_cpu_hint(count, backend)}")
    if count > 1 and not accelerators and verbose:
        print(f"note: no GPU found: the CPU is split into {count} virtual {backend} devices "
              f"for data-parallel training (this checks the mechanics; it is not faster "
              f"than one device)")
    return devices


def _local_devices(backend):
    """(names of this process's training devices, whether they are accelerators)."""
    if backend == "jax":
        import jax

        devices = jax.local_devices()
        return [f"{d.platform}:{d.id}" for d in devices], devices[0].platform != "cpu"
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))], bool(gpus)


def _split_cpu_jax(count):
    """Ask JAX for `count` CPU devices (only the CPU platform; nothing is started)."""
    import jax

    if count > 1 and "xla_force_host_platform_device_count" not in os.environ.get(
            "XLA_FLAGS", ""):
        try:
            if jax.config.jax_num_cpu_devices < count:
                jax.config.update("jax_num_cpu_devices", count)
        except RuntimeError:        # backends already initialised: checked by the caller
            pass


def _split_cpu_tensorflow(count):
    """Split TensorFlow's CPU into `count` logical devices unless there are GPUs."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU") or count == 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    present = tf.config.get_logical_device_configuration(cpu) or [None]
    if len(present) < count:
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
        except RuntimeError:        # TensorFlow already initialised: checked by the caller
            pass

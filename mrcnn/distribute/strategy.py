"""How the training model is spread over devices: `training_plan(config)` -> `TrainingPlan`.

Data-parallel training runs on the backends' own engines; nothing here
averages gradients by hand:

* **JAX**: ``keras.distribution.DataParallel`` over a 1-D ``DeviceMesh`` of
  ``jax.devices()`` (every process's devices after
  ``jax.distributed.initialize``). The graph holds the global batch
  (``BATCH_SIZE``) and XLA's GSPMD shards it over the mesh along the batch
  axis, so every mean in the graph (losses, batch-norm statistics) is over
  the global batch, exactly as on one device. The distribution is set while
  the model is built and compiled (its variables are placed on the mesh) and
  while it trains, and put back afterwards: inference models built later, and
  those built by callbacks at the end of an epoch (`PauseDistribution`), stay
  on one device.
* **TensorFlow**: ``tf.distribute.MirroredStrategy`` over the first
  ``GPU_COUNT`` GPUs (or logical CPUs), or the ``MultiWorkerMirroredStrategy``
  of `mrcnn.distribute.cluster` when several processes form a job
  (``TF_CONFIG``). The model is built
  and compiled under the strategy's scope (Keras' TF trainer keeps the
  strategy it was created under); each replica's graph holds
  ``IMAGES_PER_GPU`` images, and Keras splits the global batches of the data
  generator between the replicas. Each loss is still the mean over the global
  batch (`mrcnn.distribute.reduction`) and batch norms compute their
  statistics over it (``synchronized=True``, set on the built layers: names
  and weights do not change, so checkpoints load as before).
* **PyTorch**: one device; asking for more is an error naming the
  alternatives.

Matterport's meaning is kept: ``GPU_COUNT`` devices x ``IMAGES_PER_GPU``
images = ``BATCH_SIZE``, the global batch of one step (over every process's
devices in a cluster). ``Config.DISTRIBUTION`` chooses: "auto"
(data-parallel when ``GPU_COUNT > 1``), "none" (``GPU_COUNT`` only multiplies
the batch, one device) or "data-parallel". Only the training model is
distributed: inference models run on one device, in batches of
``BATCH_SIZE`` as before.
"""

import contextlib
import dataclasses
import functools

import keras

from mrcnn.config import DISTRIBUTIONS
from mrcnn.distribute import cluster
from mrcnn.distribute.devices import training_devices, virtual_cpu_hint
from mrcnn.distribute.engines import (PauseDistribution, clip_after_all_reduce,
                                      synchronize_batch_norm)

__all__ = ["DISTRIBUTIONS", "TrainingPlan", "training_plan", "model_plan", "resolve_kind",
           "one_device_plan", "mirrored_strategy"]

_ENGINE_NAMES = {"jax-data-parallel": "JAX DataParallel",
                 "tf-mirrored": "TensorFlow MirroredStrategy",
                 "tf-multi-worker": "TensorFlow MultiWorkerMirroredStrategy"}


@dataclasses.dataclass(frozen=True)
class TrainingPlan:
    """Where and how the training model runs.

    Attributes:
        kind: "none" (one device) or "data-parallel".
        engine: "jax-data-parallel", "tf-mirrored", "tf-multi-worker" or None.
        replicas: devices in total (over all processes).
        graph_batch_size: the static batch the Keras graph is built with:
            BATCH_SIZE on one device and on JAX (the graph holds the global
            batch, JAX shards it); IMAGES_PER_GPU on TensorFlow (per replica).
        global_batch_size: images per step over all devices (BATCH_SIZE).
        devices: names of the devices used (empty for "none").
        engine_object: the ``keras.distribution.DataParallel`` or
            ``tf.distribute.Strategy`` (None for "none").
    """

    kind: str
    engine: object
    replicas: int
    graph_batch_size: int
    global_batch_size: int
    devices: tuple = ()
    engine_object: object = dataclasses.field(default=None, compare=False, repr=False)

    def scope(self):
        """Context to build AND compile the training model under (creates its variables there)."""
        if self.engine_object is None:
            return contextlib.nullcontext()
        return self.engine_object.scope()

    def fit_scope(self):
        """Context to run ``fit`` under: the JAX distribution; nothing for TensorFlow.

        Keras' TF trainer uses the strategy the model was built under; fitting
        outside its scope keeps models built by callbacks on one device.
        """
        if self.engine == "jax-data-parallel":
            return self.engine_object.scope()
        return contextlib.nullcontext()

    def callbacks(self):
        """Callbacks to put first in ``fit``'s list (JAX: `PauseDistribution`)."""
        if self.engine == "jax-data-parallel":
            return [PauseDistribution(self.engine_object)]
        return []

    def graph_spec(self, spec):
        """`spec` (a `mrcnn.graph.GraphSpec`) with this plan's graph batch size."""
        return dataclasses.replace(spec, batch_size=self.graph_batch_size)

    def prepare(self, keras_model, train_bn):
        """Adapt the built training model to the engine; returns it.

        TensorFlow with `train_bn`: batch norms compute their statistics over
        the global batch (`synchronize_batch_norm`). JAX needs nothing: the
        graph's means are over the global batch already.
        """
        if train_bn and self.engine in ("tf-mirrored", "tf-multi-worker"):
            synchronize_batch_norm(keras_model)
        return keras_model

    def prepare_optimizer(self, optimizer):
        """Adapt the optimizer to the engine (TensorFlow: `clip_after_all_reduce`); returns it."""
        if self.engine in ("tf-mirrored", "tf-multi-worker"):
            clip_after_all_reduce(optimizer)
        return optimizer

    def describe(self):
        """One line for the training printout."""
        per = self.global_batch_size // self.replicas
        if self.kind == "none":
            return f"one device: {self.global_batch_size} images per step"
        return (f"data-parallel over {self.replicas} device{'s' * (self.replicas != 1)} "
                f"({_ENGINE_NAMES[self.engine]}: "
                f"{', '.join(self.devices)}): {self.replicas} x {per} images per step")


def resolve_kind(config):
    """Config.DISTRIBUTION -> "none" or "data-parallel" ("auto": data-parallel if GPU_COUNT > 1)."""
    kind = getattr(config, "DISTRIBUTION", "auto")
    if kind not in DISTRIBUTIONS:
        raise ValueError(f"DISTRIBUTION must be one of {DISTRIBUTIONS}, got {kind!r}")
    if kind == "auto":
        return "data-parallel" if config.GPU_COUNT > 1 else "none"
    return kind


def one_device_plan(config):
    """The plan of a model on one device (inference models; DISTRIBUTION="none")."""
    return TrainingPlan("none", None, 1, int(config.BATCH_SIZE), int(config.BATCH_SIZE))


def model_plan(mode, config):
    """`training_plan` for mode "training"; one device for "inference"."""
    return training_plan(config) if mode == "training" else one_device_plan(config)


def training_plan(config, backend=None):
    """The `TrainingPlan` of the training model of `config` on this process's backend.

    Raises:
        ValueError: a bad DISTRIBUTION; one device asked for in a job of
            several processes; GPU_COUNT larger than the devices
            present (listing them, and how to get virtual CPU devices); the
            PyTorch backend asked for several devices (naming the
            alternatives).
    """
    backend = backend or keras.backend.backend()
    if resolve_kind(config) == "none":
        processes = cluster.describe(backend).process_count  # PyTorch: refuses several itself
        if processes > 1:
            raise ValueError(
                f"this process is one of {processes} of a job (launched by "
                f"mrcnn.launch, or KERAS_DISTRIBUTION_NUM_PROCESSES / TF_CONFIG set) but the "
                f"config trains on one device (GPU_COUNT={config.GPU_COUNT}, DISTRIBUTION="
                f"{getattr(config, 'DISTRIBUTION', 'auto')!r}): every process would train a "
                f"model of its own. Set GPU_COUNT to the number of devices of all processes "
                f"(e.g. --devices N in samples/cell/train.py), or run one process")
        return one_device_plan(config)
    if backend == "torch":
        raise ValueError(
            f"GPU_COUNT={config.GPU_COUNT} asks for data-parallel training, which the PyTorch "
            f"backend of this library does not do: use KERAS_BACKEND=jax or "
            f"KERAS_BACKEND=tensorflow, or one device with the same batch (GPU_COUNT=1, "
            f"IMAGES_PER_GPU={config.BATCH_SIZE}), or DISTRIBUTION='none'")
    if backend == "jax":
        return _jax_plan(config)
    if backend == "tensorflow":
        return _tf_plan(config)
    raise ValueError(f"unknown Keras backend {backend!r}; expected tensorflow, jax or torch")


def _too_few(config, backend, devices):
    found, name = ", ".join(devices), {"jax": "JAX", "tensorflow": "TensorFlow"}[backend]
    return ValueError(
        f"GPU_COUNT={config.GPU_COUNT} but this {name} sees {len(devices)} device"
        f"{'s' if len(devices) != 1 else ''}: {found}. Set GPU_COUNT to at most "
        f"{len(devices)}, or DISTRIBUTION='none' to train GPU_COUNT x IMAGES_PER_GPU images "
        f"on one device; without GPUs, for testing: {virtual_cpu_hint(config.GPU_COUNT, backend)}")


def _jax_plan(config):
    import jax

    if cluster.process_count() > 1:
        cluster.initialize()            # before JAX lists the devices of every process
    devices = jax.devices()
    names = training_devices("jax")
    count = int(config.GPU_COUNT)
    if count > len(devices):
        raise _too_few(config, "jax", names)
    if jax.process_count() > 1 and count != len(devices):
        raise ValueError(f"GPU_COUNT={count} but the {jax.process_count()} processes of this "
                         f"cluster have {len(devices)} devices together ({', '.join(names)}); "
                         f"GPU_COUNT counts the devices of all processes: set it to "
                         f"{len(devices)}")
    distribution = keras.distribution.DataParallel(devices=devices[:count],
                                                   auto_shard_dataset=False)
    return TrainingPlan("data-parallel", "jax-data-parallel", count, int(config.BATCH_SIZE),
                        int(config.BATCH_SIZE), tuple(names[:count]), distribution)


def _tf_plan(config):
    count, per = int(config.GPU_COUNT), int(config.IMAGES_PER_GPU)
    if cluster.process_count() > 1:
        cluster.initialize()
        strategy = cluster.strategy()
        if strategy.num_replicas_in_sync != count:
            raise ValueError(f"GPU_COUNT={count} but the TensorFlow cluster (TF_CONFIG) has "
                             f"{strategy.num_replicas_in_sync} devices over all workers; "
                             f"GPU_COUNT counts the devices of all workers")
        names = tuple(strategy.extended.worker_devices)
        return TrainingPlan("data-parallel", "tf-multi-worker", count, per, count * per, names,
                            strategy)
    names = training_devices("tensorflow")
    if count > len(names):
        raise _too_few(config, "tensorflow", names)
    strategy = mirrored_strategy(tuple(names[:count]))
    return TrainingPlan("data-parallel", "tf-mirrored", count, per, count * per,
                        tuple(names[:count]), strategy)


@functools.lru_cache(maxsize=None)
def mirrored_strategy(devices):
    """The process's ``tf.distribute.MirroredStrategy`` over `devices` (tuple of names), made once.

    Every training model over the same devices shares it: two strategies in
    one process give their collective operations the same keys, and the
    second model's all-reduces then fail on the first one's shapes
    ("Shape mismatch in the collective instance ...").
    """
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(devices=list(devices))

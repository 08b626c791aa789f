"""One training job over several processes: which process this is, the chief, starting the engines.

A job of several processes (on one machine: ``python -m mrcnn.launch
--processes 2 samples/cell/train.py ...``; on several machines: one process
per machine, started by you with the variables below) is described by the
engines' own environment variables:

* JAX: ``KERAS_DISTRIBUTION_JOB_ADDRESSES`` (the coordinator, process 0,
  as ``host:port``), ``KERAS_DISTRIBUTION_NUM_PROCESSES`` and
  ``KERAS_DISTRIBUTION_PROCESS_ID`` (Keras' names, read by
  ``keras.distribution.initialize``);
* TensorFlow: ``TF_CONFIG`` (``{"cluster": {"worker": ["host:port", ...]},
  "task": {"type": "worker", "index": i}}``; a ``"chief"`` task is allowed);
* ``MRCNN_RUN_STAMP`` (optional, ``YYYYmmddTHHMMSS``): the job's time stamp,
  so every process names the run folder alike; the launcher sets it, and
  without it `initialize` sends the chief's clock to the others.

`initialize` starts the engine's cluster: ``jax.distributed.initialize`` (CPU
collectives over gloo where the JAX option is unset) with Keras' seed
agreement, or TensorFlow's ``MultiWorkerMirroredStrategy`` (`strategy`). It
must run before the backend computes anything (the engines refuse
afterwards): ``python -m mrcnn.launch`` calls it before the script starts;
a script started by hand calls it first thing (``samples/cell/train.py``
does). It is idempotent and does nothing for a single process. The PyTorch
backend trains in one process (a ValueError names the alternatives).

`process_index`, `process_count` and `is_chief` read the environment, so they
answer before and after `initialize`: the chief is JAX's process 0, or
TensorFlow's ``"chief"`` task (else worker 0); a single process is its own
chief. Only the chief writes the run folder (checkpoints, logs, best.json);
`broadcast_from_chief` gives every process the chief's value of a decision
(an evaluation's scores, whether to stop), so they all stop together.

Nothing here imports Keras or a backend at module level: the launcher and
device set-up read this module before the backend may be imported.
"""

import dataclasses
import datetime
import json
import os
import sys

import numpy as np

ENV_ADDRESSES = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
ENV_NUM_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
ENV_PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"
ENV_TF_CONFIG = "TF_CONFIG"
ENV_RUN_STAMP = "MRCNN_RUN_STAMP"
STAMP_FORMAT = "%Y%m%dT%H%M%S"
BACKENDS = ("tensorflow", "jax", "torch", "numpy", "openvino")
TF_TASKS = ("chief", "worker")       # the training tasks of a TF_CONFIG, in replica order

__all__ = ["Cluster", "describe", "initialize", "process_index", "process_count", "is_chief",
           "strategy", "broadcast_from_chief", "data_shard", "local_count", "job_time", "backend",
           "worker_metrics"]


@dataclasses.dataclass(frozen=True)
class Cluster:
    """The job this process belongs to, as the environment describes it.

    Attributes:
        backend: the Keras backend name.
        process_index: this process, 0 .. process_count - 1 (TensorFlow:
            the chief task first, then the workers).
        process_count: processes in the job (1: no cluster).
        chief: whether this process writes the run folder.
        coordinator: JAX's coordinator ``host:port`` (None otherwise).
        workers: TensorFlow's task addresses in replica order (() otherwise).
    """

    backend: str
    process_index: int = 0
    process_count: int = 1
    chief: bool = True
    coordinator: str = None
    workers: tuple = ()

    @property
    def multi_process(self):
        return self.process_count > 1


_started = {"cluster": None, "strategy": None}


def backend():
    """The Keras backend this process uses, without importing Keras when it is not loaded yet.

    Keras' own rule: ``$KERAS_BACKEND``, else ``keras.json`` in ``$KERAS_HOME``
    (default ``~/.keras``), else TensorFlow.
    """
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    name = os.environ.get("KERAS_BACKEND")
    if not name:
        home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
        try:
            with open(os.path.join(home, "keras.json")) as f:
                name = json.load(f).get("backend")
        except (OSError, ValueError, AttributeError):
            name = None
    return name or "tensorflow"


def _int_env(name, minimum):
    text = os.environ.get(name)
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ValueError(f"${name} must be an integer, got {text!r}") from None
    if value < minimum:
        raise ValueError(f"${name} must be >= {minimum}, got {value}")
    return value


def _jax_cluster(name):
    if ENV_NUM_PROCESSES not in os.environ:
        return Cluster(name)
    count = _int_env(ENV_NUM_PROCESSES, 1)
    index = _int_env(ENV_PROCESS_ID, 0) if (count > 1 or ENV_PROCESS_ID in os.environ) else 0
    if index >= count:
        raise ValueError(f"${ENV_PROCESS_ID}={index} but ${ENV_NUM_PROCESSES}={count}: process ids "
                         f"run from 0 to {count - 1}")
    coordinator = (os.environ.get(ENV_ADDRESSES) or "").split(",")[0].strip() or None
    if count > 1 and coordinator is None:
        raise ValueError(f"${ENV_NUM_PROCESSES}={count} needs ${ENV_ADDRESSES}: the host:port "
                         f"of process 0 (the coordinator), the same on every process")
    return Cluster(name, index, count, index == 0, coordinator)


def _tf_cluster(name):
    text = os.environ.get(ENV_TF_CONFIG)
    if not text:
        return Cluster(name)
    try:
        spec = json.loads(text)
        tasks = spec.get("cluster") or {}
        task = spec.get("task") or {}
        kind, index = task.get("type"), int(task.get("index", 0))
        workers = tuple(address for role in TF_TASKS for address in tasks.get(role, []))
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"$TF_CONFIG is not a valid cluster description ({exc}): expected "
                         f'{{"cluster": {{"worker": ["host:port", ...]}}, "task": '
                         f'{{"type": "worker", "index": 0}}}}, got {text!r}') from None
    if len(workers) <= 1:
        return Cluster(name, workers=workers)
    if kind not in TF_TASKS or not 0 <= index < len(tasks.get(kind, [])):
        raise ValueError(f"$TF_CONFIG task {task!r} is not one of the cluster's training tasks "
                         f"({', '.join(f'{r} 0..{len(tasks[r]) - 1}' for r in TF_TASKS if tasks.get(r))})")
    chiefs = len(tasks.get("chief", []))
    position = index if kind == "chief" else chiefs + index
    return Cluster(name, position, len(workers), position == 0, workers=workers)


def describe(backend_name=None):
    """The `Cluster` the environment describes (no engine is started).

    Args:
        backend_name: the Keras backend whose variables count (default:
            this process's, `backend`).

    Raises:
        ValueError: malformed variables (naming them), or several processes
            on a backend that trains in one.
    """
    name = backend_name or backend()
    if name == "jax":
        cluster = _jax_cluster(name)
    elif name == "tensorflow":
        cluster = _tf_cluster(name)
    else:
        cluster = Cluster(name)
        requested = os.environ.get(ENV_NUM_PROCESSES, "1").strip()
        if requested not in ("", "1") or len(_tf_cluster("tensorflow").workers) > 1:
            raise ValueError(f"the {name} backend trains in a single process, but the "
                             f"environment describes several (${ENV_NUM_PROCESSES} or "
                             f"$TF_CONFIG); use KERAS_BACKEND=jax or tensorflow for several "
                             f"processes, or one process with GPU_COUNT=1 and IMAGES_PER_GPU=N")
    return cluster


def process_index():
    """This process's index in the job (0 for a single process)."""
    return describe().process_index


def process_count():
    """Processes in the job (1 without a cluster)."""
    return describe().process_count


def is_chief():
    """Whether this process writes the run folder (True for a single process)."""
    return describe().chief


def local_count(total):
    """This process's part of `total` devices of the job (``GPU_COUNT`` counts all processes').

    Raises:
        ValueError: `total` does not split evenly over the processes.
    """
    count = process_count()
    if total % count:
        raise ValueError(f"{total} devices do not split evenly over the {count} processes of "
                         f"this job: give a multiple of {count} (each process the same number)")
    return total // count


def data_shard():
    """``(process_index, process_count)`` when each process feeds its own share of a batch, else None.

    JAX: each process gives the rows of the global batch its devices hold
    (Keras builds the global array from process-local data). TensorFlow's
    ``MultiWorkerMirroredStrategy`` takes the global batch on every worker
    and keeps the worker's part itself, so the data is not split here.
    """
    cluster = describe()
    if cluster.multi_process and cluster.backend == "jax":
        return cluster.process_index, cluster.process_count
    return None


def strategy():
    """TensorFlow's ``MultiWorkerMirroredStrategy`` of the job (after `initialize`), else None.

    There is one per process: build and compile the training model under its
    scope (``mrcnn.distribute.strategy`` does).
    """
    return _started["strategy"]


def initialize():
    """Start the job's cluster once (see the module docstring); returns the `Cluster`.

    Raises:
        ValueError: as `describe`.
        RuntimeError: the backend already computed something (the engines
            cannot join a cluster afterwards); the message says where to call it.
    """
    if _started["cluster"] is not None:
        return _started["cluster"]
    cluster = describe()
    if cluster.multi_process:
        try:
            if cluster.backend == "jax":
                _start_jax(cluster)
            else:
                _started["strategy"] = _start_tf()
        except RuntimeError as exc:
            raise RuntimeError(
                f"cannot start the {cluster.backend} cluster of {cluster.process_count} "
                f"processes ({exc}); call mrcnn.distribute.cluster.initialize() at the top of "
                f"the script, before anything runs on the backend, or start it with "
                f"python -m mrcnn.launch") from exc
        if ENV_RUN_STAMP not in os.environ:
            now = datetime.datetime.now().strftime(STAMP_FORMAT)
            os.environ[ENV_RUN_STAMP] = broadcast_from_chief(now)
    _started["cluster"] = cluster
    return cluster


def _start_jax(cluster):
    import jax
    import keras

    if jax.config.values.get("jax_cpu_collectives_implementation") in (None, "", "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    keras.distribution.initialize(cluster.coordinator, cluster.process_count,
                                  cluster.process_index)
    if jax.process_count() != cluster.process_count:
        raise RuntimeError(f"JAX sees {jax.process_count()} processes, the environment says "
                           f"{cluster.process_count}")


def _start_tf():
    import tensorflow as tf

    return tf.distribute.MultiWorkerMirroredStrategy()


def job_time():
    """The time stamp of a new run folder: the job's (``$MRCNN_RUN_STAMP``), else now.

    In a job of several processes this starts the cluster (`initialize`),
    which agrees on the stamp, so every process names the run folder alike.
    """
    if ENV_RUN_STAMP not in os.environ and describe().multi_process:
        initialize()
    stamp = os.environ.get(ENV_RUN_STAMP)
    if not stamp:
        return datetime.datetime.now()
    try:
        return datetime.datetime.strptime(stamp, STAMP_FORMAT)
    except ValueError:
        raise ValueError(f"${ENV_RUN_STAMP} must be a time stamp like 20250131T235959, got "
                         f"{stamp!r}") from None


def worker_metrics(results):
    """Metric results that Keras' TensorFlow trainer can average over the workers of a job.

    Keras 3.15 averages each step's metrics over a ``MultiWorkerMirroredStrategy``
    with ``strategy.reduce("MEAN", value, axis=0)``, which fails on the scalars
    metrics are ("Invalid reduction dimension 0 for input with 0 dimensions").
    Inside such a step (a replica context of a job of several workers) this
    gives each result as a ``[1]`` vector, which that reduce turns back into
    the scalar mean over all replicas, the same on every worker. Elsewhere
    `results` are returned as they are. Use it in ``Model.get_metrics_result``.

    Args:
        results: ``{name: scalar tensor}`` (``Model.get_metrics_result()``).
    """
    if not (_started["strategy"] is not None and describe().multi_process):
        return results
    import tensorflow as tf

    if tf.distribute.in_cross_replica_context() or not tf.distribute.has_strategy():
        return results
    return {name: tf.reshape(value, [1]) for name, value in results.items()}


def _broadcast_words(words):
    """int32 `words` of the chief on every process (same length everywhere)."""
    cluster = _started["cluster"] or describe()
    if cluster.backend == "jax":
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.broadcast_one_to_all(words, is_source=cluster.chief))
    if "tf_broadcast" not in _started:
        _started["tf_broadcast"] = _tf_broadcast(strategy())
    return np.asarray(_started["tf_broadcast"](words))


def _tf_broadcast(job):
    """A tf.function summing int32 words over the replicas, all but the chief's first as zeros."""
    import tensorflow as tf

    @tf.function
    def broadcast(words):
        def chief_only():
            first = tf.equal(tf.distribute.get_replica_context().replica_id_in_sync_group, 0)
            return words * tf.cast(first, tf.int32)

        return job.reduce(tf.distribute.ReduceOp.SUM, job.run(chief_only), axis=None)

    return broadcast


def broadcast_from_chief(value):
    """The chief's `value` (anything JSON can hold; floats exactly) on every process.

    Every process of the job must call it at the same point (it is a
    collective); with one process it returns `value`.
    """
    if not describe().multi_process:
        return value
    payload = json.dumps(value).encode("utf8") if is_chief() else b""
    size = int(_broadcast_words(np.array([len(payload)], np.int32))[0])
    padded = 1 << max(size - 1, 3).bit_length()        # few distinct shapes, few compilations
    buffer = np.zeros(padded, np.uint8)
    buffer[:len(payload)] = np.frombuffer(payload, np.uint8)
    words = _broadcast_words(buffer.view(np.int32))
    return json.loads(np.asarray(words, np.int32).view(np.uint8)[:size].tobytes().decode("utf8"))

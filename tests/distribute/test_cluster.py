"""mrcnn.distribute.cluster: the job described by the environment, read before any engine starts."""

import datetime
import json

import pytest

from mrcnn.distribute import cluster

# Backend-independent: the environment is parsed; no engine starts, no backend op runs.
pytestmark = pytest.mark.backend_independent

JAX_VARS = (cluster.ENV_ADDRESSES, cluster.ENV_NUM_PROCESSES, cluster.ENV_PROCESS_ID)


@pytest.fixture
def env(monkeypatch):
    """A clean environment: no cluster variables, no run stamp."""
    for name in JAX_VARS + (cluster.ENV_TF_CONFIG, cluster.ENV_RUN_STAMP):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def tf_config(workers, kind="worker", index=0, chief=None):
    spec = {"cluster": {"worker": workers}, "task": {"type": kind, "index": index}}
    if chief:
        spec["cluster"]["chief"] = chief
    return json.dumps(spec)


def test_no_variables_is_one_process_that_is_its_own_chief(env):
    for name in ("jax", "tensorflow", "torch"):
        c = cluster.describe(name)
        assert (c.process_index, c.process_count, c.chief, c.multi_process) == (0, 1, True, False)
    assert cluster.process_count() == 1 and cluster.process_index() == 0 and cluster.is_chief()
    assert cluster.data_shard() is None
    assert cluster.broadcast_from_chief({"a": [1.5]}) == {"a": [1.5]}    # no collective


def test_jax_variables(env):
    env.setenv(cluster.ENV_ADDRESSES, "10.0.0.1:1234,10.0.0.2:1234")
    env.setenv(cluster.ENV_NUM_PROCESSES, "3")
    env.setenv(cluster.ENV_PROCESS_ID, "2")
    c = cluster.describe("jax")
    assert (c.process_index, c.process_count, c.chief) == (2, 3, False)
    assert c.coordinator == "10.0.0.1:1234"        # the first address is the coordinator
    env.setenv(cluster.ENV_PROCESS_ID, "0")
    assert cluster.describe("jax").chief
    # TensorFlow ignores JAX's variables
    assert cluster.describe("tensorflow").process_count == 1


@pytest.mark.parametrize("variables,message", [
    ({cluster.ENV_NUM_PROCESSES: "two"}, "KERAS_DISTRIBUTION_NUM_PROCESSES must be an integer, "
                                         "got 'two'"),
    ({cluster.ENV_NUM_PROCESSES: "0"}, "KERAS_DISTRIBUTION_NUM_PROCESSES must be >= 1, got 0"),
    ({cluster.ENV_NUM_PROCESSES: "2", cluster.ENV_ADDRESSES: "h:1"},
     "KERAS_DISTRIBUTION_PROCESS_ID must be an integer, got None"),
    ({cluster.ENV_NUM_PROCESSES: "2", cluster.ENV_ADDRESSES: "h:1", cluster.ENV_PROCESS_ID: "2"},
     "KERAS_DISTRIBUTION_PROCESS_ID=2 but $KERAS_DISTRIBUTION_NUM_PROCESSES=2: process ids run "
     "from 0 to 1"),
    ({cluster.ENV_NUM_PROCESSES: "2", cluster.ENV_PROCESS_ID: "1"},
     "KERAS_DISTRIBUTION_NUM_PROCESSES=2 needs $KERAS_DISTRIBUTION_JOB_ADDRESSES"),
])
def test_bad_jax_variables_name_the_variable(env, variables, message):
    for name, value in variables.items():
        env.setenv(name, value)
    with pytest.raises(ValueError) as err:
        cluster.describe("jax")
    assert message in str(err.value)


def test_tf_config_workers_and_chief(env):
    env.setenv(cluster.ENV_TF_CONFIG, tf_config(["h1:1", "h2:2"], index=1))
    c = cluster.describe("tensorflow")
    assert (c.process_index, c.process_count, c.chief, c.workers) == (1, 2, False, ("h1:1", "h2:2"))
    env.setenv(cluster.ENV_TF_CONFIG, tf_config(["h1:1", "h2:2"], index=0))
    assert cluster.describe("tensorflow").chief                     # worker 0 without a chief
    # with a "chief" task: it is process 0 and the chief, worker 0 is process 1 and is not
    env.setenv(cluster.ENV_TF_CONFIG, tf_config(["h1:1", "h2:2"], index=0, chief=["h0:0"]))
    c = cluster.describe("tensorflow")
    assert (c.process_index, c.process_count, c.chief) == (1, 3, False)
    assert c.workers == ("h0:0", "h1:1", "h2:2")
    env.setenv(cluster.ENV_TF_CONFIG, tf_config(["h1:1"], kind="chief", chief=["h0:0"]))
    assert cluster.describe("tensorflow").chief
    # a single task is no cluster
    env.setenv(cluster.ENV_TF_CONFIG, tf_config(["h1:1"]))
    assert cluster.describe("tensorflow").process_count == 1
    # JAX ignores TF_CONFIG
    env.setenv(cluster.ENV_TF_CONFIG, tf_config(["h1:1", "h2:2"], index=1))
    assert cluster.describe("jax").process_count == 1


@pytest.mark.parametrize("text,message", [
    ("{not json", "$TF_CONFIG is not a valid cluster description"),
    (tf_config(["h1:1", "h2:2"], kind="evaluator"), "$TF_CONFIG task {'type': 'evaluator', "
                                                    "'index': 0} is not one of the cluster's "
                                                    "training tasks (worker 0..1)"),
    (tf_config(["h1:1", "h2:2"], index=2), "'index': 2} is not one of the cluster's"),
])
def test_bad_tf_config_is_named(env, text, message):
    env.setenv(cluster.ENV_TF_CONFIG, text)
    with pytest.raises(ValueError) as err:
        cluster.describe("tensorflow")
    assert message in str(err.value)


def test_torch_refuses_several_processes_and_names_the_alternatives(env):
    env.setenv(cluster.ENV_NUM_PROCESSES, "2")
    with pytest.raises(ValueError) as err:
        cluster.describe("torch")
    assert "the torch backend trains in a single process" in str(err.value)
    assert "KERAS_BACKEND=jax or tensorflow" in str(err.value)
    assert "GPU_COUNT=1 and IMAGES_PER_GPU=N" in str(err.value)
    env.setenv(cluster.ENV_NUM_PROCESSES, "1")
    assert cluster.describe("torch").process_count == 1


def test_data_shard_only_for_jax_jobs(env, monkeypatch):
    env.setenv(cluster.ENV_ADDRESSES, "h:1")
    env.setenv(cluster.ENV_NUM_PROCESSES, "2")
    env.setenv(cluster.ENV_PROCESS_ID, "1")
    env.setenv(cluster.ENV_TF_CONFIG, tf_config(["h1:1", "h2:2"], index=1))
    monkeypatch.setattr(cluster, "backend", lambda: "jax")
    assert cluster.data_shard() == (1, 2)
    monkeypatch.setattr(cluster, "backend", lambda: "tensorflow")
    assert cluster.data_shard() is None           # MultiWorkerMirroredStrategy splits itself
    assert cluster.process_index() == 1 and not cluster.is_chief()


def test_backend_without_keras_follows_keras_rules(env, monkeypatch, tmp_path):
    monkeypatch.delitem(__import__("sys").modules, "keras")
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert cluster.backend() == "jax"
    monkeypatch.delenv("KERAS_BACKEND")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert cluster.backend() == "tensorflow"                      # no keras.json: the default
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "torch"}))
    assert cluster.backend() == "torch"


def test_job_time_is_the_run_stamp(env):
    env.setenv(cluster.ENV_RUN_STAMP, "20250131T235958")
    assert cluster.job_time() == datetime.datetime(2025, 1, 31, 23, 59, 58)
    env.setenv(cluster.ENV_RUN_STAMP, "yesterday")
    with pytest.raises(ValueError) as err:
        cluster.job_time()
    assert "$MRCNN_RUN_STAMP must be a time stamp like 20250131T235959, got 'yesterday'" in str(
        err.value)
    env.delenv(cluster.ENV_RUN_STAMP)
    before = datetime.datetime.now().replace(microsecond=0)
    assert before <= cluster.job_time() <= datetime.datetime.now()


def test_run_folders_take_the_job_stamp(env, tmp_path):
    from mrcnn.training import runs

    env.setenv(cluster.ENV_RUN_STAMP, "20250131T235958")
    epoch, log_dir, pattern = runs.run_paths(tmp_path, "cell")
    assert epoch == 0 and log_dir == str(tmp_path / "cell20250131T235958")
    assert pattern == str(tmp_path / "cell20250131T235958" / "mask_rcnn_cell_{epoch:04d}.h5")


def test_initialize_without_a_cluster_starts_nothing(env, monkeypatch):
    monkeypatch.setattr(cluster, "_started", {"cluster": None, "strategy": None})
    c = cluster.initialize()
    assert c.process_count == 1 and cluster.strategy() is None
    assert cluster.initialize() is c                               # idempotent


def test_worker_metrics_only_reshape_inside_a_job_of_workers(env):
    results = {"loss": 1.5}
    assert cluster.worker_metrics(results) is results       # no job: as they are

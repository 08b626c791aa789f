"""Config.DISTRIBUTION, the training plan and its errors, in this process (one device).

Data-parallel training itself needs several devices, set up before the
backend starts: tests/distribute/test_data_parallel.py runs it in
subprocesses.
"""

import keras
import numpy as np
import pytest

from model_helpers import make_config
from mrcnn import graph
from mrcnn.distribute import (engines, model_plan, strategy, training_devices, training_plan,
                               use_devices)

BACKEND = keras.backend.backend()
needs_data_parallel_backend = pytest.mark.skipif(
    BACKEND == "torch", reason="PyTorch has no data-parallel engine here (its error: "
                               "test_pytorch_refuses_several_devices_and_names_the_alternatives)")


@pytest.mark.parametrize("value", ["mirrored", "", None, 2])
def test_distribution_setting_is_checked(value):
    with pytest.raises(ValueError, match="DISTRIBUTION must be one of") as error:
        make_config(DISTRIBUTION=value)
    assert "'auto', 'none', 'data-parallel'" in str(error.value)
    assert f"got {value!r}" in str(error.value)


@pytest.mark.parametrize("distribution, gpus, kind", [
    ("auto", 1, "none"), ("auto", 2, "data-parallel"), ("none", 4, "none"),
    ("data-parallel", 1, "data-parallel")])
def test_auto_is_data_parallel_with_several_gpus(distribution, gpus, kind):
    config = make_config(DISTRIBUTION=distribution, GPU_COUNT=gpus, IMAGES_PER_GPU=1)
    assert strategy.resolve_kind(config) == kind


def test_distribution_none_keeps_the_batch_on_one_device_on_every_backend():
    config = make_config(DISTRIBUTION="none", GPU_COUNT=2, IMAGES_PER_GPU=3)
    for backend in ("tensorflow", "jax", "torch"):
        plan = training_plan(config, backend=backend)
        assert (plan.kind, plan.engine, plan.replicas) == ("none", None, 1)
        assert (plan.graph_batch_size, plan.global_batch_size) == (6, 6)
        assert plan.describe() == "one device: 6 images per step"
        assert plan.callbacks() == []
        with plan.scope(), plan.fit_scope():
            pass


@pytest.mark.parametrize("distribution, gpus", [("auto", 1), ("none", 2)])
def test_one_device_in_a_job_of_several_processes_is_refused(monkeypatch, distribution, gpus):
    from mrcnn.distribute import cluster

    monkeypatch.delenv(cluster.ENV_TF_CONFIG, raising=False)
    monkeypatch.setenv(cluster.ENV_ADDRESSES, "127.0.0.1:1234,127.0.0.1:1235")
    monkeypatch.setenv(cluster.ENV_NUM_PROCESSES, "2")
    monkeypatch.setenv(cluster.ENV_PROCESS_ID, "1")
    config = make_config(DISTRIBUTION=distribution, GPU_COUNT=gpus, IMAGES_PER_GPU=1)
    with pytest.raises(ValueError) as error:
        training_plan(config, backend="jax")
    message = str(error.value)
    for part in ("one of 2", f"GPU_COUNT={gpus}", f"DISTRIBUTION={distribution!r}",
                 "--devices N", "run one process"):
        assert part in message, (part, message)
    assert model_plan("inference", config).kind == "none"      # inference: one device anywhere


def test_pytorch_refuses_several_devices_and_names_the_alternatives():
    config = make_config(GPU_COUNT=2, IMAGES_PER_GPU=3)
    with pytest.raises(ValueError) as error:
        training_plan(config, backend="torch")
    message = str(error.value)
    for part in ("GPU_COUNT=2", "PyTorch", "KERAS_BACKEND=jax", "KERAS_BACKEND=tensorflow",
                 "GPU_COUNT=1, IMAGES_PER_GPU=6", "DISTRIBUTION='none'"):
        assert part in message, (part, message)
    with pytest.raises(ValueError, match="KERAS_BACKEND=jax.*IMAGES_PER_GPU=2"):
        use_devices(2, backend="torch")


@needs_data_parallel_backend
def test_more_gpus_than_devices_lists_what_was_found():
    found = training_devices()
    wanted = len(found) + 3
    with pytest.raises(ValueError) as error:
        training_plan(make_config(GPU_COUNT=wanted, IMAGES_PER_GPU=1))
    message = str(error.value)
    name = {"tensorflow": "TensorFlow", "jax": "JAX"}[BACKEND]
    assert f"GPU_COUNT={wanted} but this {name} sees {len(found)} device" in message
    assert all(device in message for device in found), (found, message)
    assert f"use_devices({wanted})" in message and "DISTRIBUTION='none'" in message
    if BACKEND == "jax":
        assert f"XLA_FLAGS=--xla_force_host_platform_device_count={wanted}" in message


@needs_data_parallel_backend
def test_use_devices_after_the_backend_started_says_how_to_get_them():
    found = training_devices()        # the backend is running now: too late to split the CPU
    with pytest.raises(ValueError) as error:
        use_devices(len(found) + 2, verbose=False)
    message = str(error.value)
    assert f"{len(found) + 2} devices requested but this {BACKEND} process sees " \
           f"{len(found)}" in message
    assert f"use_devices({len(found) + 2})" in message
    assert use_devices(1) == found


@pytest.mark.parametrize("count, error", [(0, ValueError), (-1, ValueError), ("2", TypeError),
                                          (True, TypeError), (2.0, TypeError)])
def test_use_devices_checks_its_argument(count, error):
    with pytest.raises(error, match=f"count must be .*got {count!r}"):
        use_devices(count)


@needs_data_parallel_backend
def test_data_parallel_on_one_device_uses_the_engine():
    plan = training_plan(make_config(DISTRIBUTION="data-parallel", GPU_COUNT=1,
                                     IMAGES_PER_GPU=2))
    engine = {"tensorflow": "tf-mirrored", "jax": "jax-data-parallel"}[BACKEND]
    assert (plan.kind, plan.engine, plan.replicas, plan.global_batch_size) == (
        "data-parallel", engine, 1, 2)
    # JAX: the graph holds the global batch; TensorFlow: each replica's share
    assert plan.graph_batch_size == 2
    assert plan.devices == (training_devices()[0],)
    name = {"tensorflow": "TensorFlow MirroredStrategy", "jax": "JAX DataParallel"}[BACKEND]
    assert plan.describe() == f"data-parallel over 1 device ({name}: {plan.devices[0]}): " \
                              f"1 x 2 images per step"


def test_inference_models_stay_on_one_device():
    config = make_config(GPU_COUNT=3, IMAGES_PER_GPU=1, DISTRIBUTION="data-parallel")
    plan = model_plan("inference", config)              # what MaskRCNN("inference", ...) uses
    assert (plan.kind, plan.engine, plan.replicas) == ("none", None, 1)
    assert plan.graph_spec(graph.spec_from_config(config)).batch_size == 3   # detect's batch


def test_synchronize_batch_norm_keeps_names_and_weights():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d"),
                              keras.layers.BatchNormalization(name="bn_inner")], name="inner")
    inputs = keras.Input((4,))
    outputs = keras.layers.BatchNormalization(name="bn_outer")(inner(inputs))
    model = keras.Model(inputs, outputs)
    before = [w.copy() for w in model.get_weights()]
    names = [w.path for w in model.weights]
    assert engines.synchronize_batch_norm(model) == ["bn_inner", "bn_outer"]
    assert inner.get_layer("bn_inner").synchronized and model.get_layer("bn_outer").synchronized
    assert [w.path for w in model.weights] == names
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_pause_distribution_lifts_it_between_epochs():
    marker = object()
    pause = engines.PauseDistribution(marker)
    try:
        pause.on_epoch_begin(0)
        assert keras.distribution.distribution() is marker
        pause.on_epoch_end(0)
        assert keras.distribution.distribution() is None
    finally:
        keras.distribution.set_distribution(None)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's optimizer all-reduces")
def test_clip_after_all_reduce_clips_as_before_on_one_replica():
    variable = keras.Variable(np.zeros(2, "float32"))
    optimizer = keras.optimizers.SGD(learning_rate=1.0, clipnorm=0.5)
    assert engines.clip_after_all_reduce(optimizer) is optimizer
    engines.clip_after_all_reduce(optimizer)                   # twice is once
    grad = np.array([3.0, 4.0], "float32")                      # norm 5
    np.testing.assert_array_equal(optimizer._clip_gradients([grad])[0], grad)  # moved
    optimizer.apply_gradients([(grad, variable)])
    np.testing.assert_allclose(variable.numpy(), [-0.3, -0.4], rtol=1e-6)  # clipped to 0.5
    with pytest.raises(RuntimeError, match="cannot be moved after the replicas' sum"):
        engines.clip_after_all_reduce(object())

"""Data-parallel training on two (virtual CPU) devices gives the weights of one-device training.

Each backend runs `dp_equivalence.py` in a subprocess (the devices must be
set up before the backend starts): 3 steps of SGD on the same global
batches from the same weights, TRAIN_BN off and on, with a gradient clip that
acts. The test of a backend runs in that backend's pytest run (CI: the
TensorFlow suite, the JAX fast run); on JAX the TRAIN_BN-off case is `slow`
and runs in the TensorFlow suite, which runs every slow test.

Measured (2-core CPU): max |w_one - w_two| 1.5e-8 .. 1.8e-7 after the
weights moved 5e-3 .. 6e-2. What the tolerance 1e-5 rules out, measured on
TensorFlow: clipping each replica's part before the sum (Keras' order):
4e-3; Keras' loss / replicas instead of the shares of the global count:
8e-4; batch norms without synchronized statistics: 3e-2.

The worker compiles at XLA's default optimisation level, not the tests'
level 0 (tests/conftest.py): three steps of training from random weights
pass through discrete choices (proposal ranking and NMS, ROI labels), and a
rounding difference can flip one. Measured on JAX, TRAIN_BN on (2026-12-03,
2-core AMD EPYC): at level 0 the one-device program's third step picked a
slightly different proposal (the two-device program's did not), and the
weights differed by 4.7e-4; at the default level both programs agree to
1.6e-6 (66 s for the worker instead of 44 s).
"""

import json
import os
import subprocess
import sys

import keras
import pytest
from helpers import without_device_count

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORKER = os.path.join(HERE, "dp_equivalence.py")
TOLERANCE = 1e-5
ENGINES = {"jax": ("jax-data-parallel", 2), "tensorflow": ("tf-mirrored", 1)}
_results = {}


def run_here(backend, slow):
    """Whether this pytest run runs the test of `backend` (see the module docstring)."""
    current = keras.backend.backend()
    return current == backend or (slow and current == "tensorflow")


def equivalence(backend, train_bn, tmp_path_factory):
    """The worker's result for `train_bn`; TensorFlow's two cases share one process."""
    modes = ("0", "1") if backend == "tensorflow" else (str(train_bn),)
    if (backend, modes) not in _results:
        out = tmp_path_factory.mktemp("dp") / "result.json"
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
                   PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        without_device_count(env, default_optimisation=True)
        proc = subprocess.run([sys.executable, WORKER, backend, str(out), *modes], env=env,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
        _results[(backend, modes)] = json.loads(out.read_text())
    return _results[(backend, modes)]


@pytest.mark.parametrize("backend, train_bn", [
    ("jax", 1), pytest.param("jax", 0, marks=pytest.mark.slow),
    ("tensorflow", 0), ("tensorflow", 1)])
def test_two_devices_train_like_one(backend, train_bn, tmp_path_factory):
    if not run_here(backend, slow=(backend, train_bn) == ("jax", 0)):
        pytest.skip(f"runs in the {backend} run (a subprocess of its own backend)")
    result = equivalence(backend, train_bn, tmp_path_factory)
    r = result[str(train_bn)]
    engine, graph_batch = ENGINES[backend]
    assert len(result["devices"]) == 2
    assert (r["engine"], r["replicas"], r["graph_batch_size"]) == (engine, 2, graph_batch)
    assert r["plan"][0] == "one device: 2 images per step"
    assert r["plan"][1].startswith("data-parallel over 2 devices (") and \
        r["plan"][1].endswith("): 2 x 1 images per step")
    assert r["same_names"] and r["same_start"] == 0.0
    assert r["max_moved"] > 1e-3, r                     # the steps changed the weights
    if train_bn:                                        # batch statistics trained
        assert r["moving_stats_moved"] > 1e-3, r
    else:
        assert r["moving_stats_moved"] == 0.0, r
    assert r["max_diff"] <= TOLERANCE, r
    one, two = r["history"]
    assert "val_map_iou" in two                         # scored on one device, mid-training
    assert ("val_loss" in one) == (backend == "tensorflow")
    for name, value in one.items():                     # the logged losses are the global ones
        assert two[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name

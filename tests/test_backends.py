"""The same short training run on TensorFlow, JAX and PyTorch (one subprocess each)."""

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "backend_smoke.py")
MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_short_training_run_on_backend(backend, tmp_path):
    if importlib.util.find_spec(MODULES[backend]) is None:
        if os.environ.get("MRCNN_REQUIRE_BACKENDS"):
            pytest.fail(f"{backend} is not installed but MRCNN_REQUIRE_BACKENDS is set")
        pytest.skip(f"{backend} not installed")
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, SCRIPT, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=1200)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["backend"] == backend
    losses = result["loss"]
    assert all(math.isfinite(v) for v in losses), losses
    assert losses[-1] < losses[0], losses
    for n, shape in zip(result["detections"], result["mask_shapes"]):
        assert shape == [64, 64, n]

#!/usr/bin/env bash
# The GPU suite in one command, for a machine with JAX (and PyTorch) but no
# TensorFlow and no network. What Keras needs and the machine lacks comes as
# wheels from a local folder (default .whl/ in the repository root), made on a
# machine with network by:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
#     -d .whl keras==3.15.1 namex==0.1.0 optree==0.20.0 lz4==4.4.5 pycocotools==2.0.11
# Usage (from the repository root):
#   bash benchmarks/gpu_suite.sh [gpu_suite.py options, e.g. --cases b0-bf16,b0-f32]
#   WHEELS=/path/to/wheels bash benchmarks/gpu_suite.sh --smoke
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS="${WHEELS:-.whl}"
if ! python3 -c "import keras, lz4" 2>/dev/null; then
    if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
        echo "keras/lz4 do not import and there are no wheels in $WHEELS (see this script's header)" >&2
        exit 2
    fi
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/mrcnn_site "$WHEELS"/*.whl
    export PYTHONPATH="/tmp/mrcnn_site${PYTHONPATH:+:$PYTHONPATH}"
fi
export KERAS_BACKEND="${KERAS_BACKEND:-jax}"
# Allocate GPU memory as needed, so that the peak figures mean something.
export XLA_PYTHON_CLIENT_PREALLOCATE="${XLA_PYTHON_CLIENT_PREALLOCATE:-false}"
export PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import keras, jax, numpy; print('keras', keras.__version__, 'backend', keras.backend.backend(), 'jax', jax.__version__, jax.devices(), 'numpy', numpy.__version__)"
exec python3 benchmarks/gpu_suite.py "$@"

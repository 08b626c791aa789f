"""Training on several devices: data-parallel on Keras' own engines.

* `strategy`: `training_plan(config)` -> `TrainingPlan` (JAX ``DataParallel``,
  TensorFlow ``MirroredStrategy`` / ``MultiWorkerMirroredStrategy``, or one
  device), chosen by ``Config.DISTRIBUTION`` and ``GPU_COUNT``;
* `devices`: the devices a backend trains on; `use_devices(n)` at the top of
  a script (virtual CPU devices on a machine without GPUs);
* `reduction`: losses over the global batch when each replica sees its share.

Settings: ``GPU_COUNT`` devices x ``IMAGES_PER_GPU`` images = ``BATCH_SIZE``,
the global batch of one training step. Inference models stay on one device.
"""

import importlib

# Loaded on first use, so that `python -m mrcnn.launch` (which reads `cluster`
# only) starts its processes without importing Keras first.
_HOMES = {"training_devices": "devices", "use_devices": "devices",
          "DISTRIBUTIONS": "strategy", "TrainingPlan": "strategy", "model_plan": "strategy",
          "training_plan": "strategy"}

__all__ = sorted(_HOMES)


def __getattr__(name):
    if name not in _HOMES:
        raise AttributeError(f"module 'mrcnn.distribute' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mrcnn.distribute.{_HOMES[name]}"), name)
    globals()[name] = value
    return value

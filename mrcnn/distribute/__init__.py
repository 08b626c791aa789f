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

from mrcnn.distribute.devices import training_devices, use_devices
from mrcnn.distribute.strategy import DISTRIBUTIONS, TrainingPlan, model_plan, training_plan

__all__ = ["DISTRIBUTIONS", "TrainingPlan", "model_plan", "training_plan", "training_devices",
           "use_devices"]

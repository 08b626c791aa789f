"""The training step is traced (compiled) once per `train()` call, not once per step.

The loss function (`mrcnn.training.trainer.compute_losses`) runs as Python
only while the engine traces the step: under TensorFlow's ``tf.function`` and
JAX's ``jit`` a count of its calls is the count of traces. A retrace per step
(a shape or a Python value that changes between batches) would multiply the
step time on these engines; PyTorch runs eagerly, so there each step calls it.
"""

import keras
import pytest

from model_helpers import make_config, shapes
from mrcnn import model as modellib
from mrcnn.ops import dispatch
from mrcnn.training import trainer

BACKEND = keras.backend.backend()


def test_train_step_and_validation_step_trace_once(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = trainer.compute_losses

    def counting(*args, **kwargs):
        calls["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer, "compute_losses", counting)
    # 48 ROIs: 15 positive rows, so on JAX the mask head switches between buckets of 8 and
    # 15 rows (mrcnn.layers.row_buckets) inside the one compiled step, as on an accelerator
    monkeypatch.setattr(dispatch, "switch_trains_fast", lambda: BACKEND == "jax")
    config = make_config(STEPS_PER_EPOCH=2, VALIDATION_STEPS=1, TRAIN_ROIS_PER_IMAGE=48)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    built = calls["n"]                      # building the graph calls no loss
    model.train(shapes(8), shapes(4, seed=1), config.LEARNING_RATE, epochs=2, layers="all",
                verbose=0)
    traced = calls["n"] - built
    steps = 2 * (config.STEPS_PER_EPOCH + config.VALIDATION_STEPS)
    if BACKEND == "torch":
        assert traced == steps              # eager: every step runs the Python
    else:
        assert traced == 2, (f"{traced} traces in 2 epochs of {config.STEPS_PER_EPOCH} "
                             f"training and {config.VALIDATION_STEPS} validation steps: "
                             f"the step retraces")

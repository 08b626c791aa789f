"""Training callbacks: NaN guard, atomic by-name checkpoints, output checks."""

import importlib.util
import math
import os
import tempfile

import keras


def tensorboard_available():
    """Whether Keras' TensorBoard callback can write logs here."""
    return (importlib.util.find_spec("tensorboard") is not None
            and importlib.util.find_spec("tensorflow") is not None)


def check_writable(folder):
    """Raise a clear error now (not after an epoch) when `folder` is not writable."""
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise PermissionError(
            f"cannot write to the output folder {folder!r} ({exc.strerror or exc}); "
            f"pass a writable model_dir (e.g. the working directory or /tmp)") from None


class NanGuard(keras.callbacks.Callback):
    """Stop training with a clear message when a loss becomes NaN or infinite.

    The error names the epoch, the step and the value of every loss, so a user
    can tell which part diverged (and lower the learning rate or check data).
    """

    def __init__(self, loss_names):
        super().__init__()
        self.loss_names = tuple(loss_names)
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        values = {k: float(v) for k, v in logs.items()
                  if k == "loss" or k in self.loss_names}
        if any(not math.isfinite(v) for v in values.values()):
            parts = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
            self.model.stop_training = True
            raise FloatingPointError(
                f"training diverged at epoch {self._epoch + 1}, step {batch + 1}: {parts}. "
                f"Lower the learning rate, raise N_WARMUP_STEPS or GRADIENT_CLIP_NORM, or "
                f"check the data of this step (empty or degenerate masks)")


class Checkpoint(keras.callbacks.Callback):
    """Save the weights by layer name at the end of every epoch, atomically.

    Args:
        mrcnn_model: the MaskRCNN wrapper (its ``save_weights`` is used and its
            ``epoch`` kept current, so an interrupted run resumes here).
        path_pattern: e.g. ``.../mask_rcnn_cell_{epoch:04d}.h5``.
    """

    def __init__(self, mrcnn_model, path_pattern):
        super().__init__()
        self.mrcnn_model = mrcnn_model
        self.path_pattern = path_pattern

    def on_epoch_end(self, epoch, logs=None):
        path = self.path_pattern.format(epoch=epoch + 1)
        self.mrcnn_model.save_weights(path)
        self.mrcnn_model.epoch = epoch + 1

"""Training callbacks: NaN guard, atomic by-name checkpoints, cache statistics, output checks."""

import importlib.util
import math
import os
import tempfile

import keras

from mrcnn.weights import save_weights


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
        path_pattern: e.g. ``.../mask_rcnn_cell_{epoch:04d}.h5``.
        on_saved: optional ``fn(epoch, path)`` called after each save (the
            model facade keeps its epoch count there, so an interrupted run
            resumes after the last saved epoch).
    """

    def __init__(self, path_pattern, on_saved=None):
        super().__init__()
        self.path_pattern = path_pattern
        self.on_saved = on_saved

    def on_epoch_end(self, epoch, logs=None):
        path = self.path_pattern.format(epoch=epoch + 1)
        save_weights(self.model, path)
        if self.on_saved is not None:
            self.on_saved(epoch + 1, path)


class CacheStatsLogger(keras.callbacks.Callback):
    """Print the cache's hits, misses, size and compression after every epoch.

    The numbers of the epoch are also added to the epoch logs, so History,
    CSVLogger and TensorBoard record them (place this callback before
    CSVLogger): ``cache_hits``, ``cache_misses``, ``cache_hit_rate``,
    ``cache_mb`` (size of the cache) and ``cache_ratio`` (compression).

    Args:
        cache: the `mrcnn.data.cache.SampleCache` of the generators.
        verbose: print the line (1) or only add the logs (0).
        print_fn: where the line goes (default: print).
    """

    def __init__(self, cache, verbose=1, print_fn=print):
        super().__init__()
        self.cache = cache
        self.verbose = verbose
        self.print_fn = print_fn
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self.cache.stats()

    def on_epoch_end(self, epoch, logs=None):
        now = self.cache.stats()
        epoch_stats = now - (self._start or type(now)())
        if self.verbose:
            self.print_fn(f"sample cache ({self.cache.mode}), epoch {epoch + 1}: "
                          f"{epoch_stats.activity()}; cache holds {now.holdings()}")
        if logs is not None:
            logs.update({
                "cache_hits": float(epoch_stats.hits),
                "cache_misses": float(epoch_stats.misses),
                "cache_hit_rate": float(epoch_stats.hit_rate),
                "cache_mb": now.size_bytes / 2 ** 20,
                "cache_ratio": float(now.ratio),
            })

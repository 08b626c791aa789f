"""Training callbacks: NaN guard, atomic by-name checkpoints, history.csv, cache statistics.

Nothing diverged is saved: `NanGuard` stops at the first non-finite loss
(every training step, then the epoch's training and validation means), and
`Checkpoint` checks every weight before it writes (the update of an epoch's
last step is seen by no loss), so the newest checkpoint is always the last
good one; it also writes the training state for an exact resume, keeps the
best checkpoint by a watched metric and stops early when it stalls.
`HistoryCSV` keeps ``history.csv`` one row per epoch across resumed runs.
"""

import collections.abc
import importlib.util
import math
import os
import tempfile
import warnings

import keras
import numpy as np

from mrcnn.distribute import cluster
from mrcnn.layers.walk import leaf_layers
from mrcnn.training import runs
from mrcnn.training import state as train_state
from mrcnn.weights import NonFiniteWeightsError, save_weights
from mrcnn.weights.integrity import describe_layers, non_finite_layers

# Epoch-log entries listed in the loss history of an error message.
HISTORY_KEYS = ("loss", "val_loss")
HISTORY_LIMIT = 20
DIVERGED_ADVICE = ("Lower the learning rate, raise N_WARMUP_STEPS or GRADIENT_CLIP_NORM, or "
                   "check the data (empty or degenerate masks)")


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


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _format(value):
    return f"{value:.4g}"


class LossHistory:
    """The epoch losses seen so far in a run, for error messages."""

    def __init__(self):
        self.epochs = []   # (1-based epoch, {key: value})

    def add(self, epoch, logs):
        values = {k: _number(logs[k]) for k in HISTORY_KEYS if k in (logs or {})}
        self.epochs = [e for e in self.epochs if e[0] != epoch + 1]
        self.epochs.append((epoch + 1, {k: v for k, v in values.items() if v is not None}))

    def text(self):
        if not self.epochs:
            return "no epoch finished yet"
        shown = self.epochs[-HISTORY_LIMIT:]
        lines = [f"epoch {e}: " + ", ".join(f"{k}={_format(v)}" for k, v in values.items())
                 for e, values in shown]
        return ("... " if len(self.epochs) > len(shown) else "") + "; ".join(lines)


class NanGuard(keras.callbacks.Callback):
    """Stop training with a clear message when a loss becomes NaN or infinite.

    Checks the losses of every training step and, at the end of each epoch,
    its mean training and validation losses (``val_*``), before the
    checkpoint callback runs. The error names the epoch (and step), the
    value of every loss and the loss history of the run, so a user can tell
    which part diverged (and lower the learning rate or check data).
    """

    def __init__(self, loss_names):
        super().__init__()
        self.loss_names = tuple(loss_names)
        self._epoch = 0
        self.history = LossHistory()

    def _watched(self, key):
        base = key[4:] if key.startswith("val_") else key
        return base == "loss" or base in self.loss_names

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        values = {k: _number(v) for k, v in logs.items() if self._watched(k)}
        values = {k: v for k, v in values.items() if v is not None}
        self.history.add(epoch, logs)
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if bad:
            self.model.stop_training = True
            where = "validation" if all(k.startswith("val_") for k in bad) else "training"
            parts = ", ".join(f"{k}={_format(v)}" for k, v in values.items())
            raise FloatingPointError(
                f"{where} losses are not finite at the end of epoch {epoch + 1}: {parts}. "
                f"No checkpoint was written for this epoch. Loss history: "
                f"{self.history.text()}. {DIVERGED_ADVICE}")

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        values = {k: float(v) for k, v in logs.items()
                  if k == "loss" or k in self.loss_names}
        if any(not math.isfinite(v) for v in values.values()):
            parts = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
            self.model.stop_training = True
            raise FloatingPointError(
                f"training diverged at epoch {self._epoch + 1}, step {batch + 1}: {parts}. "
                f"No checkpoint was written for this epoch. Loss history: "
                f"{self.history.text()}. Lower the learning rate, raise N_WARMUP_STEPS or "
                f"GRADIENT_CLIP_NORM, or check the data of this step (empty or degenerate masks)")


class Checkpoint(keras.callbacks.Callback):
    """Save the weights by layer name at the end of every epoch, atomically.

    Every weight is checked before the write: when one is NaN or infinite
    (an update that diverged, e.g. on the epoch's last step, which no loss
    has seen yet) nothing is written and a FloatingPointError names the
    epoch, the layers and the loss history, so the newest checkpoint stays
    the last good one.

    Beside the checkpoint go the run's training state (optimizer variables,
    random-generator states: `mrcnn.training.state`, for an exact resume;
    only the newest checkpoint's is kept) and, when a metric is watched, the
    best checkpoint's record (``best.json``, `runs.write_best`).

    In a job of several processes (`mrcnn.distribute.cluster`) only the
    chief writes; the others check the weights alike (and fail alike), call
    `on_saved`, and take the chief's decision to stop (``patience``), so all
    stop after the same epoch.

    Args:
        path_pattern: e.g. ``.../mask_rcnn_cell_{epoch:04d}.h5``.
        on_saved: optional ``fn(epoch, path)`` called after each save (the
            model facade keeps its epoch count there, so an interrupted run
            resumes after the last saved epoch).
        keep: "all" (every checkpoint; Matterport's), "best" (the best by
            `monitor` and the newest, to resume from) or "last" (the newest).
        monitor: the epoch-log entry that ranks checkpoints (e.g.
            ``val_map_iou`` from `mrcnn.evaluation.epoch_score.EpochScore`,
            or ``val_loss``); None: no best is tracked.
        mode: "max", "min" or "auto" (min for names ending in "loss").
        patience: stop training when `monitor` has not improved for this
            many epochs (counted across resumed runs, from ``best.json``);
            None: never.
        save_state: write the training state beside each checkpoint.
    """

    def __init__(self, path_pattern, on_saved=None, keep="all", monitor=None, mode="auto",
                 patience=None, save_state=True):
        super().__init__()
        self.path_pattern = path_pattern
        self.on_saved = on_saved
        self.keep = runs.check_keep(keep)
        if keep == "best" and not monitor:
            raise ValueError("keep='best' needs a metric to rank checkpoints: monitor='val_map_iou' "
                             "(with an EpochScore callback) or 'val_loss'")
        if mode == "auto":
            mode = "min" if str(monitor or "").endswith("loss") else "max"
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max', 'min' or 'auto', got {mode!r}")
        if patience is not None and (int(patience) != patience or patience < 1):
            raise ValueError(f"patience must be a positive number of epochs or None, got "
                             f"{patience!r}")
        if patience and not monitor:
            raise ValueError("patience needs a monitor (the metric that must improve)")
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.save_state = save_state
        self.best = None
        self.stopped_epoch = None
        self._seen, self._missing = False, None
        self.history = LossHistory()
        self.chief, self.shared = True, False

    @property
    def log_dir(self):
        return os.path.dirname(os.path.abspath(self.path_pattern))

    def on_train_begin(self, logs=None):
        self.best, self.stopped_epoch, self._seen, self._missing = None, None, False, None
        self.chief, self.shared = cluster.is_chief(), cluster.process_count() > 1
        if self.chief and self.monitor and os.path.isdir(self.log_dir):
            record = runs.read_best(self.log_dir)
            if record is not None and record["monitor"] == self.monitor:
                self.best = record

    def improves(self, value):
        """Whether `value` of the monitor beats the best so far (NaN never does)."""
        if value is None or not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value > self.best["value"] if self.mode == "max" else value < self.best["value"]

    def on_epoch_end(self, epoch, logs=None):
        path = self.path_pattern.format(epoch=epoch + 1)
        self.history.add(epoch, logs)
        if self.chief:
            self._save(epoch, path, logs)
        else:
            self._check_finite(epoch, path)
            if self.on_saved is not None:
                self.on_saved(epoch + 1, path)
        if self.shared:
            self.model.stop_training = bool(cluster.broadcast_from_chief(
                bool(self.model.stop_training)))
            if self.model.stop_training and self.stopped_epoch is None:
                self.stopped_epoch = epoch + 1

    def _not_finite(self, epoch, path, layers):
        self.model.stop_training = True
        return FloatingPointError(
            f"the weights are not finite after epoch {epoch + 1} (in "
            f"{describe_layers(layers)}); the checkpoint {path} was not written "
            f"(earlier checkpoints are kept). Loss history: "
            f"{self.history.text()}. {DIVERGED_ADVICE}")

    def _check_finite(self, epoch, path):
        """What the chief's save checks, without writing (the other processes of a job)."""
        found = non_finite_layers([(layer.name, [keras.ops.convert_to_numpy(v)
                                                 for v in layer.weights])
                                   for layer in leaf_layers(self.model) if layer.weights])
        if found:
            raise self._not_finite(epoch, path, found)

    def _save(self, epoch, path, logs):
        try:
            save_weights(self.model, path, finite_only=True)
        except NonFiniteWeightsError as exc:
            raise self._not_finite(epoch, path, exc.layers) from None
        optimizer = getattr(self.model, "optimizer", None)
        if self.save_state and optimizer is not None and optimizer.built:
            train_state.save_state(runs.state_path(path), optimizer, self.model, path, epoch + 1)
        if self.on_saved is not None:
            self.on_saved(epoch + 1, path)
        if self.monitor:
            if self.monitor in (logs or {}):
                self._seen = True
            else:
                self._missing = (epoch + 1, sorted(logs or {}))
            value = _number((logs or {}).get(self.monitor))
            if self.improves(value):
                self.best = runs.write_best(self.log_dir, epoch + 1, self.monitor, self.mode,
                                            value, path)
        runs.prune_checkpoints(self.log_dir, self.keep, epoch + 1,
                               self.best["epoch"] if self.best else None)
        if self.patience and self.best and epoch + 1 - self.best["epoch"] >= self.patience:
            self.model.stop_training = True
            self.stopped_epoch = epoch + 1
            print(f"early stopping after epoch {epoch + 1}: {self.monitor} has not improved for "
                  f"{epoch + 1 - self.best['epoch']} epochs (best {self.best['value']:.4g} at "
                  f"epoch {self.best['epoch']})")

    def on_train_end(self, logs=None):
        if self.chief and self.monitor and not self._seen and self._missing is not None:
            epoch, names = self._missing
            warnings.warn(f"the checkpoints are ranked by {self.monitor!r}, which no epoch's logs "
                          f"held (those of epoch {epoch} hold {names}); add the callback that "
                          f"computes it (EpochScore for val_map_iou) or pick another monitor",
                          RuntimeWarning, stacklevel=2)


class HistoryCSV(keras.callbacks.Callback):
    """``history.csv``: one row per epoch, as ``keras.callbacks.CSVLogger`` writes it.

    Unlike ``CSVLogger(append=True)``: a run resuming at epoch ``k`` first
    drops the rows of epochs >= ``k`` (trained again) instead of listing them
    twice; a new column (e.g. validation added on resume) rewrites the header
    instead of shifting values under the wrong names (a missing value is an
    empty field); and every write replaces the file atomically, so a killed
    run never leaves half a row.

    Args:
        path: the CSV file (``<log_dir>/history.csv``).
    """

    def __init__(self, path):
        super().__init__()
        self.path = os.fspath(path)
        self._trimmed = False

    def on_train_begin(self, logs=None):
        self._trimmed = False

    def on_epoch_begin(self, epoch, logs=None):
        if not self._trimmed:
            runs.trim_history(self.path, epoch)
            self._trimmed = True

    @staticmethod
    def _cell(value):
        if isinstance(value, np.ndarray) and value.ndim == 0:
            return value.item()
        if isinstance(value, collections.abc.Iterable) and not isinstance(value, str):
            return f'"[{", ".join(map(str, value))}]"'    # as CSVLogger writes lists
        return value

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        header, rows = runs.read_history(self.path)
        rows = [r for r in rows if runs.history_epoch(r, header) != epoch]
        if not header or not set(logs) <= set(header):
            old = header
            header = ["epoch"] + sorted((set(header) | set(logs)) - {"epoch"})
            rows = [[dict(zip(old, r)).get(k, "") for k in header] for r in rows]
        row = {"epoch": epoch, **{k: self._cell(v) for k, v in logs.items()}}
        rows.append([row.get(k, "") for k in header])
        runs.write_history(self.path, header, rows)


class CacheStatsLogger(keras.callbacks.Callback):
    """Print the cache's hits, misses, size and compression after every epoch.

    The numbers of the epoch are also added to the epoch logs, so History,
    HistoryCSV (or CSVLogger) and TensorBoard record them (place this callback
    before those): ``cache_hits``, ``cache_misses``, ``cache_hit_rate``,
    ``cache_mb`` (size of the cache) and ``cache_ratio`` (compression).

    In a job of several processes each counts its own cache activity; only
    the chief prints its line.

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
        if self.verbose and cluster.is_chief():
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

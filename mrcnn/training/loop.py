"""One call of ``MaskRCNN.train``: run folder, optimizer state, callbacks, ``keras.Model.fit``."""

import logging
import os

import keras

from mrcnn.config import save_config
from mrcnn.training import callbacks as run_callbacks
from mrcnn.training import runs
from mrcnn.training.trainer import LOSS_NAMES

log = logging.getLogger(__name__)


def prepare_run_folder(log_dir, config):
    """Create the run folder, fail now (not after an epoch) if it is not writable, save config.json.

    The settings travel with the checkpoints: inference rebuilds the same
    model with ``mrcnn.config.load_config(<run>/config.json)``. Temporary
    files of a save that a killed run left in the folder are removed
    (`mrcnn.training.runs.remove_partial_saves`), and so are those of runs of
    this NAME that never wrote a checkpoint (`remove_abandoned_saves`).
    """
    os.makedirs(log_dir, exist_ok=True)
    run_callbacks.check_writable(log_dir)
    runs.remove_partial_saves(log_dir)
    runs.remove_abandoned_saves(os.path.dirname(os.path.abspath(log_dir)), config.NAME)
    save_config(config, os.path.join(log_dir, "config.json"))


def restore_step(optimizer, previous, epoch, steps_per_epoch):
    """Continue the learning-rate schedule where the last run stopped.

    The step count comes from the optimizer of the previous ``train()`` call
    in this process, else from the epoch the model resumes at.
    """
    done = (int(keras.ops.convert_to_numpy(previous.iterations))
            if previous is not None and previous.built else epoch * steps_per_epoch)
    optimizer.iterations.assign(done)


def standard_callbacks(log_dir, checkpoint_path, cache=None, on_saved=None):
    """NaN guard, cache statistics, history.csv, checkpoints and (when installed) TensorBoard.

    The order matters: the NaN guard checks the epoch's (validation) losses
    before anything is written; the cache statistics are added to the epoch
    logs before ``history.csv`` gets them; the checkpoint checks the weights
    before writing. ``history.csv`` drops the rows of the epochs a resumed
    run trains again (`run_callbacks.HistoryCSV`).
    """
    callbacks = [run_callbacks.NanGuard(LOSS_NAMES)]
    if cache is not None:
        callbacks.append(run_callbacks.CacheStatsLogger(cache))
    callbacks += [
        run_callbacks.HistoryCSV(os.path.join(log_dir, runs.HISTORY_FILE)),
        run_callbacks.Checkpoint(checkpoint_path, on_saved=on_saved),
    ]
    if run_callbacks.tensorboard_available():
        callbacks.append(keras.callbacks.TensorBoard(log_dir=log_dir, write_graph=False,
                                                     profile_batch=0))
    else:
        log.info("tensorboard is not installed: no TensorBoard logs (CSV logs in %s)", log_dir)
    return callbacks


def fit(keras_model, train_generator, val_generator, *, initial_epoch, epochs,
        steps_per_epoch, validation_steps, callbacks, verbose=1):
    """``keras_model.fit`` over the generators from `initial_epoch` to `epochs`.

    An error raised while building a batch (an unreadable image: see
    `mrcnn.data.sample.sample_error`) comes out as the generator raised it,
    naming the image, with the original error as ``__cause__``, not as the
    backend's wrapper of it (on TensorFlow, an error from inside tf.data with
    the Python traceback in its message); see
    `mrcnn.data.generator.batch_error`.
    """
    from mrcnn.data.generator import batch_error

    generators = [g for g in (train_generator, val_generator) if g is not None]
    for generator in generators:
        if hasattr(generator, "last_error"):
            generator.last_error = None
    try:
        return keras_model.fit(
            train_generator, initial_epoch=initial_epoch, epochs=epochs,
            steps_per_epoch=steps_per_epoch, validation_data=val_generator,
            validation_steps=validation_steps if val_generator is not None else None,
            callbacks=callbacks, verbose=verbose)
    except Exception as error:
        found = batch_error(error, generators)
        if found is None:
            raise
        raised, cause = found
        raise raised from cause   # Keras re-raises with __cause__ cleared: restore it

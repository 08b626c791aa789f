"""One call of ``MaskRCNN.train``: run folder, optimizer state, callbacks, ``keras.Model.fit``.

`train` is the body of ``MaskRCNN.train``; it works on the facade's
attributes (``keras_model``, ``config``, ``model_dir``, ``epoch``,
``log_dir``, ``checkpoint_path``, ``resume_state``) and methods
(``set_trainable``, ``compile``) and knows nothing else of the class.

What a ``train()`` call continues from (``model.resume_state``):

* a checkpoint path (set by ``load_weights(checkpoint)`` / ``resume()`` /
  ``set_log_dir(checkpoint)``): its training state
  (`mrcnn.training.state`): the optimizer's moments and step counter and
  the random-generator states, so the run goes on exactly as if it had
  never stopped; without one (an older checkpoint, a save killed before
  it) a RuntimeWarning says the optimizer starts afresh;
* the optimizer of the previous ``train()`` call of this process
  (Matterport's "heads, then all"): its slots carry over by variable;
* None (a new run, ``init_from``): a fresh optimizer at step 0.
"""

import logging
import os
import warnings

import keras

from mrcnn.config import save_config
from mrcnn.data.generator import make_generators
from mrcnn.distribute import cluster
from mrcnn.training import callbacks as run_callbacks
from mrcnn.training import runs
from mrcnn.training import state as train_state
from mrcnn.training.allocator import AllocatorThresholds
from mrcnn.training.fit_inputs import fit_inputs
from mrcnn.training.trainer import ALL_LOSS_NAMES

log = logging.getLogger(__name__)


def prepare_run_folder(log_dir, config):
    """Create the run folder, fail now (not after an epoch) if it is not writable, save config.json.

    The settings travel with the checkpoints: inference rebuilds the same
    model with ``mrcnn.config.load_config(<run>/config.json)``. Temporary
    files of a save that a killed run left in the folder are removed
    (`mrcnn.training.runs.remove_partial_saves`), and so are those of runs of
    this NAME that never wrote a checkpoint (`remove_abandoned_saves`).

    In a job of several processes only the chief does this (the others never
    write into the run folder; `mrcnn.distribute.cluster`).

    Returns:
        True when this process prepared the folder, False on the others.
    """
    if not cluster.is_chief():
        return False
    os.makedirs(log_dir, exist_ok=True)
    run_callbacks.check_writable(log_dir)
    runs.remove_partial_saves(log_dir)
    runs.remove_abandoned_saves(os.path.dirname(os.path.abspath(log_dir)), config.NAME)
    save_config(config, os.path.join(log_dir, "config.json"))
    return True


def train(model, train_dataset, val_dataset, learning_rate, epochs, layers, *,
          augmentation=None, custom_callbacks=None, no_augmentation_sources=None, workers=None,
          use_multiprocessing=None, verbose=1, seed=0, sampler=None, epoch_metrics=(),
          keep="all", monitor=None, patience=None):
    """Train the facade `model` until epoch `epochs`; see ``MaskRCNN.train`` for the arguments.

    `epoch_metrics` are callbacks that add entries to the epoch logs (e.g.
    `mrcnn.evaluation.epoch_score.EpochScore`); they run after the NaN guard
    and before ``history.csv``, TensorBoard and the checkpoint, which ranks
    checkpoints by `monitor` (default: ``val_map_iou`` when `epoch_metrics`
    are given, else ``val_loss``) when `keep` is "best" or `patience` is set.

    The model trains where ``model.plan`` (`mrcnn.distribute.TrainingPlan`)
    says: the optimizer is made under its scope and ``fit`` runs under its
    fit scope, with its callbacks first.

    Returns:
        the Keras History.
    """
    if epochs <= model.epoch:
        raise ValueError(f"epochs={epochs} but the model has already trained {model.epoch} "
                         f"epochs; pass the epoch number to train until (e.g. "
                         f"{model.epoch + 1})")
    cfg = model.config
    if not cluster.is_chief():
        verbose = 0         # one progress bar per job: the chief's (mrcnn.distribute.cluster)
    if monitor is None and (keep == "best" or patience):
        monitor = "val_map_iou" if epoch_metrics else "val_loss"
    checkpoint = run_callbacks.Checkpoint(
        model.checkpoint_path, on_saved=lambda epoch, _: setattr(model, "epoch", epoch),
        keep=keep, monitor=monitor, patience=patience)
    train_gen, val_gen, cache = make_generators(
        train_dataset, val_dataset, cfg, model_dir=model.model_dir, augmentation=augmentation,
        sampler=sampler, seed=seed, workers=workers, use_multiprocessing=use_multiprocessing,
        epoch=model.epoch, no_augmentation_sources=no_augmentation_sources)
    prepare_run_folder(model.log_dir, cfg)
    runs.set_aside_after(model.log_dir, model.epoch)
    trained = model.set_trainable(layers)
    plan = model.plan
    if verbose:
        print(f"\nStarting at epoch {model.epoch}. LR={learning_rate}\nCheckpoint Path: "
              f"{model.checkpoint_path}\nTraining {len(trained)} layers ({layers})\n"
              f"Devices: {plan.describe()}")
    source, model.resume_state = model.resume_state, None
    previous = train_state.optimizer_arrays(source) if isinstance(
        source, keras.optimizers.Optimizer) else None
    with plan.scope():      # optimizer variables where the model's are (mrcnn.distribute)
        optimizer = model.compile(learning_rate, cfg.LEARNING_MOMENTUM,
                                  epochs * cfg.STEPS_PER_EPOCH)
        optimizer.build(model.keras_model.trainable_variables)
        restore_state(optimizer, model.keras_model, source, previous, model.epoch,
                      cfg.STEPS_PER_EPOCH)
    callbacks = plan.callbacks() + standard_callbacks(
        model.log_dir, model.checkpoint_path, cache, epoch_metrics=epoch_metrics,
        checkpoint=checkpoint)
    with plan.fit_scope():
        history = fit(model.keras_model, train_gen, val_gen, initial_epoch=model.epoch,
                      epochs=epochs, steps_per_epoch=cfg.STEPS_PER_EPOCH,
                      validation_steps=cfg.VALIDATION_STEPS,
                      callbacks=callbacks + list(custom_callbacks or []), verbose=verbose)
    model.resume_state = optimizer
    return history


def restore_state(optimizer, keras_model, source, previous, epoch, steps_per_epoch):
    """Give a new run's optimizer the state it continues from (see the module docstring).

    Args:
        optimizer: the run's optimizer, built.
        keras_model: the training model.
        source: ``model.resume_state``: a checkpoint path, the previous
            optimizer of this process, or None.
        previous: ``state.optimizer_arrays(source)`` when `source` is an
            optimizer (read before compiling replaced it).
        epoch, steps_per_epoch: where the run starts (the step counter
            without a saved state).

    Returns:
        the report of `state.restore_state`, or None when nothing was restored.
    """
    if previous:
        report = train_state.restore_state(optimizer, keras_model,
                                           {"optimizer": previous, "random": None})
        log.info("optimizer state carried over from the previous train() call: %d variables "
                 "(%d new ones start from zero)", len(report["restored"]), len(report["fresh"]))
        return report
    if isinstance(source, (str, os.PathLike)):
        saved, why = train_state.load_resume_state(source)
        if saved is not None:
            report = train_state.restore_state(optimizer, keras_model, saved["arrays"])
            log.info("resumed the training state of %s: %d optimizer variables (%d new ones "
                     "start from zero)", source, len(report["restored"]), len(report["fresh"]))
            return report
        warnings.warn(f"resuming from {source} without its training state ({why}): the "
                      f"optimizer's momentum / moments restart from zero and the ROI sampling "
                      f"from a new random state, so this is not the run it would have been",
                      RuntimeWarning, stacklevel=3)
    restore_step(optimizer, None, epoch, steps_per_epoch)
    return None


def restore_step(optimizer, previous, epoch, steps_per_epoch):
    """Continue the learning-rate schedule where the last run stopped.

    The step count comes from the optimizer of the previous ``train()`` call
    in this process, else from the epoch the model resumes at.
    """
    done = (int(keras.ops.convert_to_numpy(previous.iterations))
            if previous is not None and previous.built else epoch * steps_per_epoch)
    optimizer.iterations.assign(done)


def standard_callbacks(log_dir, checkpoint_path, cache=None, on_saved=None, epoch_metrics=(),
                       checkpoint=None):
    """Allocator thresholds, NaN guard, cache statistics, epoch metrics, history.csv,
    checkpoints, TensorBoard.

    `AllocatorThresholds` undoes TensorFlow's tf.data malloc setting (on a
    2-core AMD EPYC it made a shapes step 680 ms instead of 383 ms; see
    `mrcnn.training.allocator`).

    The order matters: the NaN guard checks the epoch's (validation) losses
    before anything is written; the cache statistics and `epoch_metrics`
    (callbacks adding e.g. ``val_map_iou``) are added to the epoch logs
    before ``history.csv`` and the checkpoint (which may rank by them) get
    them; the checkpoint checks the weights before writing. ``history.csv``
    drops the rows of the epochs a resumed run trains again
    (`run_callbacks.HistoryCSV`). TensorBoard (when installed) and Keras'
    History come last and see every entry. In a job of several processes
    (`mrcnn.distribute.cluster`) the others get no ``history.csv`` and no
    TensorBoard, and their checkpoint callback writes nothing (it takes the
    chief's decision to stop).

    Args:
        checkpoint: a `run_callbacks.Checkpoint` (default: every epoch kept,
            `on_saved` called).
    """
    chief = cluster.is_chief()
    callbacks = [AllocatorThresholds(), run_callbacks.NanGuard(ALL_LOSS_NAMES)]
    if cache is not None:
        callbacks.append(run_callbacks.CacheStatsLogger(cache))
    callbacks += list(epoch_metrics)
    if chief:
        callbacks.append(run_callbacks.HistoryCSV(os.path.join(log_dir, runs.HISTORY_FILE)))
    callbacks.append(checkpoint or run_callbacks.Checkpoint(checkpoint_path, on_saved=on_saved))
    if chief and run_callbacks.tensorboard_available():
        callbacks.append(keras.callbacks.TensorBoard(log_dir=log_dir, write_graph=False,
                                                     profile_batch=0))
    elif chief:
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

    Each generator's epoch is set to fit's as the epoch begins, and on
    TensorFlow generators without a worker pool run as tf.data without
    autotuning (`mrcnn.training.fit_inputs`: Keras' own handling shifted the
    epochs by one and held every epoch start idle for up to a minute).

    ``shuffle=False``: the generators draw their own order per epoch from
    their seed; Keras' shuffle would reorder the batches with Python's global
    `random` state, which a resumed run does not share (so it would not be
    the run it continues).
    """
    from mrcnn.data.generator import batch_error

    generators = [g for g in (train_generator, val_generator) if g is not None]
    for generator in generators:
        if hasattr(generator, "last_error"):
            generator.last_error = None
    train_data, val_data, advance = fit_inputs(train_generator, val_generator)
    try:
        return keras_model.fit(
            train_data, initial_epoch=initial_epoch, epochs=epochs,
            steps_per_epoch=steps_per_epoch, validation_data=val_data,
            validation_steps=validation_steps if val_generator is not None else None,
            callbacks=advance + list(callbacks), verbose=verbose, shuffle=False)
    except Exception as error:
        found = batch_error(error, generators)
        if found is None:
            raise
        raised, cause = found
        raise raised from cause   # Keras re-raises with __cause__ cleared: restore it

"""Run folders and checkpoint names (Matterport's layout).

Each training run writes to ``<model_dir>/<name><YYYYmmddTHHMMSS>/``:
checkpoints ``mask_rcnn_<name>_<epoch:04d>.h5``, ``config.json`` and
``history.csv``. ``<name>`` is ``Config.NAME`` in lower case ("mrcnn" when
unset). A checkpoint's name tells its run and its epoch, which is how a run
resumes (Matterport's ``set_log_dir(model_path)``).

What a killed run leaves behind is tidied when a run starts in the folder:
``.tmp-*.h5`` files of a save that did not finish are removed
(`remove_partial_saves`; they are never taken for checkpoints), and the
rows of ``history.csv`` for the epochs a resumed run trains again are
dropped (`trim_history`), so no epoch is listed twice.

In a job of several processes (`mrcnn.distribute.cluster`) every process
names the run folder alike (the job's time stamp) and only the chief writes
into it: the callbacks, `mrcnn.training.loop.prepare_run_folder` and
`set_aside_after` leave it alone on the other processes.

Beside the checkpoints a run keeps:

* ``train_state_<name>_<epoch:04d>.h5``: the optimizer and random-number
  state of the newest checkpoint, for an exact resume (`state_path`;
  written by `mrcnn.training.state`); only the newest is kept.
* ``best.json``: the epoch, metric and value of the best checkpoint so far
  (`read_best`, `write_best`), when training watches a metric;
  ``load_weights("best")`` loads it (`find_best`).

A run continued from checkpoint ``k`` moves the checkpoints after ``k`` (and
their states, and a best record among them) into
``abandoned-after-<k:04d>-<stamp>/`` inside the run folder
(`set_aside_after`), so "last" and "best" never pick up the branch that was
given up. `prune_checkpoints` applies a keep policy ("all", "best", "last").
"""

import csv
import datetime
import io
import json
import logging
import os
import re

from mrcnn.data import tempfiles
from mrcnn.distribute import cluster

log = logging.getLogger(__name__)

CHECKPOINT_PATTERN = r"mask_rcnn_(?P<name>.+)_(?P<epoch>\d{4})\.h5$"
# Temporary files of an interrupted save: a checkpoint (mrcnn.weights.save_weights),
# history.csv (write_history) or config.json (mrcnn.config.save_config).
PARTIAL_SAVE_PATTERNS = (".tmp-*.h5", ".tmp-history-*.csv", ".tmp-*.json")
HISTORY_FILE = "history.csv"
STATE_PATTERN = r"train_state_(?P<name>.+)_(?P<epoch>\d{4})\.h5$"
BEST_FILE = "best.json"
ABANDONED_PREFIX = "abandoned-after-"
KEEP_CHOICES = ("all", "best", "last")


def run_name(config_name):
    """The lower-case name used in run folders and checkpoint files."""
    return (config_name or "mrcnn").lower()


def checkpoint_epoch(path):
    """The epoch in a checkpoint's file name, or None for another name."""
    m = re.search(CHECKPOINT_PATTERN, os.path.basename(os.fspath(path)))
    return int(m.group("epoch")) if m else None


def require_checkpoint_name(path):
    """The epoch of run checkpoint `path`; a ValueError naming it for any other file."""
    epoch = checkpoint_epoch(path)
    if epoch is None:
        raise ValueError(f"cannot resume from {os.fspath(path)}: a run is resumed from one of its "
                         f"checkpoints, named mask_rcnn_<name>_<epoch:04d>.h5 in its run folder; "
                         f"to start a new run from these weights use init_from(path) (train.py "
                         f"--init PATH)")
    return epoch


def run_paths(model_dir, config_name, model_path=None, now=None):
    """(epoch, log_dir, checkpoint_path pattern) of a new run, or of the run of `model_path`.

    Args:
        model_dir: folder holding the runs.
        config_name: ``Config.NAME``.
        model_path: a checkpoint named like ``.../mask_rcnn_<name>_<epoch>.h5``:
            the run continues in its folder after its epoch. Any other path
            (or None) starts a new run folder stamped with the time.
        now: the time stamp (default: now; in a job of several processes
            the job's, `mrcnn.distribute.cluster.job_time`, so every process
            names the folder alike).

    Returns:
        ``(epoch, log_dir, checkpoint_path)`` where ``checkpoint_path`` holds
        ``{epoch:04d}`` for ``str.format``.
    """
    name = run_name(config_name)
    epoch = checkpoint_epoch(model_path) if model_path else None
    if epoch is not None:
        log_dir = os.path.dirname(os.path.abspath(os.fspath(model_path)))
    else:
        epoch = 0
        now = now or cluster.job_time()
        log_dir = os.path.join(os.fspath(model_dir), f"{name}{now:%Y%m%dT%H%M%S}")
    return epoch, log_dir, os.path.join(log_dir, f"mask_rcnn_{name}_{{epoch:04d}}.h5")


def list_checkpoints(model_dir, config_name=None):
    """Checkpoints under `model_dir`, newest first: runs by time stamp, then epochs.

    Only files named ``mask_rcnn_<name>_<epoch:04d>.h5`` count (never a
    ``.tmp-*.h5`` left by an interrupted save).

    Args:
        model_dir: folder holding the runs.
        config_name: ``Config.NAME`` of the runs to consider; None takes the
            runs of any name (ordered by the time stamp in their folder names).

    Returns:
        A list of paths ([] when there is none).
    """
    found = []
    for folder in run_folders(model_dir, config_name):
        checkpoints = [f for f in os.listdir(folder) if re.fullmatch(CHECKPOINT_PATTERN, f)]
        found += [os.path.join(folder, f)
                  for f in sorted(checkpoints, key=checkpoint_epoch, reverse=True)]
    return found


def run_folders(model_dir, config_name=None):
    """The run folders under `model_dir`, newest first (by the time stamp in their names).

    Args:
        model_dir: folder holding the runs.
        config_name: ``Config.NAME`` of the runs to consider; None takes any name.
    """
    model_dir = os.fspath(model_dir)
    name = run_name(config_name) if config_name is not None else None
    folder_re = re.compile((re.escape(name) if name else r"(?P<any>.+?)")
                           + r"(?P<stamp>\d{8}T\d{4}(\d\d)?)")   # Matterport's: no seconds
    runs = []
    if os.path.isdir(model_dir):
        for d in os.listdir(model_dir):
            m = folder_re.fullmatch(d)
            if m and os.path.isdir(os.path.join(model_dir, d)):
                runs.append((m.group("stamp").ljust(15, "0"), d))
    return [os.path.join(model_dir, run) for _, run in sorted(runs, reverse=True)]


def find_last(model_dir, config_name=None):
    """Path of the last checkpoint of the newest run under `model_dir`.

    Args:
        model_dir: folder holding the runs.
        config_name: ``Config.NAME`` of the runs to consider; None takes the
            newest run of any name (by the time stamp in its folder name).

    Raises:
        FileNotFoundError: naming the folder searched, when there is none.
    """
    found = list_checkpoints(model_dir, config_name)
    if found:
        return found[0]
    model_dir = os.fspath(model_dir)
    name = run_name(config_name) if config_name is not None else None
    pattern = f"{name}*/mask_rcnn_{name}_NNNN.h5" if name else \
        "<name><YYYYmmddTHHMMSS>/mask_rcnn_<name>_NNNN.h5"
    what = f" of config {name!r}" if name else ""
    raise FileNotFoundError(f"no checkpoint{what} under {os.path.abspath(model_dir)} "
                            f"(looked for {pattern})")


# ---------------------------------------------------- leftovers of a killed run
def remove_partial_saves(folder, older_than=None):
    """Delete the temporary files an interrupted save left in `folder`.

    Those are ``.tmp-*.h5`` (a checkpoint being written), ``.tmp-history-*.csv``
    (``history.csv`` being rewritten) and ``.tmp-*.json`` (``config.json``); the
    finished files are renamed over their targets, so these are never complete.

    Args:
        folder: a run folder.
        older_than: only files not written for this many seconds (None: all,
            for the folder a run is about to write to itself).

    Returns:
        The paths removed (each is also logged).
    """
    return tempfiles.remove_stale(folder, PARTIAL_SAVE_PATTERNS, older_than, "a save")


def remove_abandoned_saves(model_dir, config_name):
    """`remove_partial_saves` in the runs of `config_name` that hold no checkpoint.

    A run killed while writing its first checkpoint is never resumed (the
    next run starts a new folder), so its temporary checkpoint (as large as
    a checkpoint) would stay for good. Only files older than
    `mrcnn.data.tempfiles.grace_s` are removed.

    Returns:
        The paths removed.
    """
    model_dir = os.fspath(model_dir)
    name = run_name(config_name)
    stamp = re.compile(re.escape(name) + r"\d{8}T\d{4}(\d\d)?")
    removed = []
    if not os.path.isdir(model_dir):
        return removed
    for d in sorted(os.listdir(model_dir)):
        folder = os.path.join(model_dir, d)
        if stamp.fullmatch(d) and os.path.isdir(folder) and not any(
                re.fullmatch(CHECKPOINT_PATTERN, f) for f in os.listdir(folder)):
            removed += remove_partial_saves(folder, older_than=tempfiles.grace_s())
    return removed


def read_history(path):
    """``(header, rows)`` of a ``history.csv`` (rows as lists of strings); ([], []) if absent."""
    if not os.path.exists(path):
        return [], []
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return (rows[0], rows[1:]) if rows else ([], [])


def write_history(path, header, rows):
    """Write a ``history.csv`` atomically (a temporary file renamed over it)."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    tempfiles.write_text_atomically(path, text.getvalue(), prefix=".tmp-history-",
                                    suffix=".csv", newline="")


def history_epoch(row, header):
    """The 0-based epoch of a ``history.csv`` row, or None when it has none."""
    try:
        return int(row[header.index("epoch")])
    except (ValueError, IndexError):
        return None


def trim_history(path, first_epoch):
    """Drop the rows of epochs >= `first_epoch` (0-based, as Keras logs them), atomically.

    A run resuming after checkpoint ``k`` trains epochs ``k, k+1, ...``
    again; their old rows go, so ``history.csv`` lists every epoch once.
    Rows without an epoch number are kept.

    Returns:
        The number of rows dropped.
    """
    header, rows = read_history(path)
    kept = [r for r in rows if (history_epoch(r, header) is None
                                or history_epoch(r, header) < first_epoch)]
    if len(kept) != len(rows):
        write_history(path, header, kept)
        log.info("%s: dropped %d rows of epochs >= %d (trained again)", path,
                 len(rows) - len(kept), first_epoch)
    return len(rows) - len(kept)


# ------------------------------------------------ training states, best, keep policy
def state_path(checkpoint_path):
    """The training-state file of checkpoint ``.../mask_rcnn_<name>_<epoch>.h5``.

    Returns:
        ``.../train_state_<name>_<epoch>.h5``, or None for a file not named
        like a checkpoint (only run checkpoints have a state).
    """
    checkpoint_path = os.fspath(checkpoint_path)
    m = re.fullmatch(CHECKPOINT_PATTERN, os.path.basename(checkpoint_path))
    if m is None:
        return None
    return os.path.join(os.path.dirname(checkpoint_path),
                        f"train_state_{m.group('name')}_{m.group('epoch')}.h5")


def _epoch_of_file(name):
    """The epoch of a checkpoint or training-state file name, else None."""
    for pattern in (CHECKPOINT_PATTERN, STATE_PATTERN):
        m = re.fullmatch(pattern, name)
        if m:
            return int(m.group("epoch"))
    return None


def read_best(log_dir):
    """The best-checkpoint record of a run folder, or None when it has none.

    Returns:
        dict ``epoch`` (1-based, the checkpoint's), ``monitor``, ``mode``
        ("max" or "min"), ``value``, ``checkpoint`` (file name in the folder).

    Raises:
        ValueError: the record is not readable, naming the file.
    """
    path = os.path.join(os.fspath(log_dir), BEST_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
        record["epoch"] = int(record["epoch"])
        record["value"] = float(record["value"])
        str(record["monitor"]), str(record["checkpoint"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a best-checkpoint record ({exc}); delete it to start "
                         f"the best tracking afresh") from None
    return record


def write_best(log_dir, epoch, monitor, mode, value, checkpoint):
    """Record (atomically) that `checkpoint` of `epoch` is the run's best by `monitor`."""
    record = {"epoch": int(epoch), "monitor": monitor, "mode": mode, "value": float(value),
              "checkpoint": os.path.basename(os.fspath(checkpoint))}
    tempfiles.write_text_atomically(os.path.join(os.fspath(log_dir), BEST_FILE),
                                    json.dumps(record, indent=1), prefix=".tmp-best-",
                                    suffix=".json")
    return record


def find_best(model_dir, config_name=None):
    """Path of the best checkpoint of the newest run that recorded one (`read_best`).

    Raises:
        FileNotFoundError: no run under `model_dir` recorded a best
            checkpoint, or the newest record's file is gone (``keep="last"``
            deletes it); the message says which and how to get one.
    """
    for folder in run_folders(model_dir, config_name):
        record = read_best(folder)
        if record is None:
            continue
        path = os.path.join(folder, record["checkpoint"])
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"the best checkpoint of {folder} ({record['monitor']}={record['value']:.4g} "
                f"at epoch {record['epoch']}) is {record['checkpoint']}, which was not kept "
                f"(keep='last' keeps only the newest); train with keep='best' to keep it")
        return path
    what = f" of config {run_name(config_name)!r}" if config_name is not None else ""
    raise FileNotFoundError(
        f"no best checkpoint{what} under {os.path.abspath(os.fspath(model_dir))}: a run "
        f"records one ({BEST_FILE}) when it trains with a metric to watch (train(..., "
        f"keep='best') or samples/cell/train.py --keep best)")


def set_aside_after(log_dir, epoch, now=None):
    """Move the checkpoints of epochs after `epoch` out of the way of "last" and "best".

    A run continued from checkpoint `epoch` gives up the checkpoints it had
    written after it. They (with their training states, and ``best.json``
    when its best epoch is among them) move into
    ``<log_dir>/abandoned-after-<epoch:04d>-<stamp>/``: nothing is deleted,
    and neither ``find_last`` nor ``find_best`` looks there.

    In a job of several processes only the chief moves them (the others
    return ``(None, [])``).

    Returns:
        ``(folder, names moved)``; ``(None, [])`` when nothing was after `epoch`.
    """
    log_dir = os.fspath(log_dir)
    if not os.path.isdir(log_dir) or not cluster.is_chief():
        return None, []
    later = sorted(f for f in os.listdir(log_dir)
                   if (_epoch_of_file(f) or 0) > epoch and os.path.isfile(os.path.join(log_dir, f)))
    best = read_best(log_dir)
    if best is not None and best["epoch"] > epoch:
        later.append(BEST_FILE)
    if not later:
        return None, []
    now = now or datetime.datetime.now()
    folder = os.path.join(log_dir, f"{ABANDONED_PREFIX}{epoch:04d}-{now:%Y%m%dT%H%M%S}")
    os.makedirs(folder, exist_ok=True)
    for name in later:
        os.replace(os.path.join(log_dir, name), os.path.join(folder, name))
    log.warning("%s continues after epoch %d: moved %d files of the later epochs (%s) to %s",
                log_dir, epoch, len(later), ", ".join(later), folder)
    return folder, later


def check_keep(keep):
    """`keep` if it is one of `KEEP_CHOICES`, else a ValueError naming it."""
    if keep not in KEEP_CHOICES:
        raise ValueError(f"keep must be one of {KEEP_CHOICES}, got {keep!r}")
    return keep


def prune_checkpoints(log_dir, keep, last_epoch, best_epoch=None):
    """Delete the checkpoints a keep policy drops, and every training state but the newest.

    Args:
        log_dir: the run folder.
        keep: "all" (every checkpoint), "best" (the best and the newest) or
            "last" (the newest only).
        last_epoch: the newest checkpoint's epoch.
        best_epoch: the best checkpoint's epoch (for "best"), or None.

    Returns:
        The paths removed. Files of epochs after `last_epoch` are never touched.
    """
    check_keep(keep)
    kept = {last_epoch} | ({best_epoch} if keep == "best" and best_epoch else set())
    removed = []
    for name in sorted(os.listdir(os.fspath(log_dir))):
        epoch = _epoch_of_file(name)
        if epoch is None or epoch >= last_epoch:
            continue
        is_state = re.fullmatch(STATE_PATTERN, name) is not None
        if is_state or (keep != "all" and epoch not in kept):
            path = os.path.join(os.fspath(log_dir), name)
            os.remove(path)
            removed.append(path)
    if removed:
        log.info("keep=%r: removed %s", keep, ", ".join(os.path.basename(p) for p in removed))
    return removed

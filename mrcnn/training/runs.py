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
"""

import csv
import datetime
import logging
import os
import re
import tempfile

from mrcnn.data import tempfiles

log = logging.getLogger(__name__)

CHECKPOINT_PATTERN = r"mask_rcnn_(?P<name>.+)_(?P<epoch>\d{4})\.h5$"
# Temporary files of an interrupted save: a checkpoint (mrcnn.weights.save_weights),
# history.csv (write_history) or config.json (mrcnn.config.save_config).
PARTIAL_SAVE_PATTERNS = (".tmp-*.h5", ".tmp-history-*.csv", ".tmp-*.json")
HISTORY_FILE = "history.csv"


def run_name(config_name):
    """The lower-case name used in run folders and checkpoint files."""
    return (config_name or "mrcnn").lower()


def checkpoint_epoch(path):
    """The epoch in a checkpoint's file name, or None for another name."""
    m = re.search(CHECKPOINT_PATTERN, os.path.basename(os.fspath(path)))
    return int(m.group("epoch")) if m else None


def run_paths(model_dir, config_name, model_path=None, now=None):
    """(epoch, log_dir, checkpoint_path pattern) of a new run, or of the run of `model_path`.

    Args:
        model_dir: folder holding the runs.
        config_name: ``Config.NAME``.
        model_path: a checkpoint named like ``.../mask_rcnn_<name>_<epoch>.h5``:
            the run continues in its folder after its epoch. Any other path
            (or None) starts a new run folder stamped with the time.
        now: the time stamp (default: now).

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
        now = now or datetime.datetime.now()
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
    found = []
    for _, run in sorted(runs, reverse=True):
        folder = os.path.join(model_dir, run)
        checkpoints = [f for f in os.listdir(folder) if re.fullmatch(CHECKPOINT_PATTERN, f)]
        found += [os.path.join(folder, f)
                  for f in sorted(checkpoints, key=checkpoint_epoch, reverse=True)]
    return found


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
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-history-", suffix=".csv")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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

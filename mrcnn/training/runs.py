"""Run folders and checkpoint names (Matterport's layout).

Each training run writes to ``<model_dir>/<name><YYYYmmddTHHMMSS>/``:
checkpoints ``mask_rcnn_<name>_<epoch:04d>.h5``, ``config.json`` and
``history.csv``. ``<name>`` is ``Config.NAME`` in lower case ("mrcnn" when
unset). A checkpoint's name tells its run and its epoch, which is how a run
resumes (Matterport's ``set_log_dir(model_path)``).
"""

import datetime
import os
import re

CHECKPOINT_PATTERN = r"mask_rcnn_(?P<name>.+)_(?P<epoch>\d{4})\.h5$"


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


def find_last(model_dir, config_name=None):
    """Path of the last checkpoint of the newest run under `model_dir`.

    Args:
        model_dir: folder holding the runs.
        config_name: ``Config.NAME`` of the runs to consider; None takes the
            newest run of any name (by the time stamp in its folder name).

    Raises:
        FileNotFoundError: naming the folder searched, when there is none.
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
    for _, run in sorted(runs, reverse=True):
        folder = os.path.join(model_dir, run)
        checkpoints = sorted(f for f in os.listdir(folder) if re.fullmatch(CHECKPOINT_PATTERN, f))
        if checkpoints:
            return os.path.join(folder, checkpoints[-1])
    pattern = f"{name}*/mask_rcnn_{name}_NNNN.h5" if name else \
        "<name><YYYYmmddTHHMMSS>/mask_rcnn_<name>_NNNN.h5"
    what = f" of config {name!r}" if name else ""
    raise FileNotFoundError(f"no checkpoint{what} under {os.path.abspath(model_dir)} "
                            f"(looked for {pattern})")

"""Temporary files of interrupted atomic writes: when one counts as abandoned, removing it.

Every file mrcnn writes (checkpoints, ``history.csv``, ``config.json``, cache
entries, submissions) is written to a temporary file in the same folder and
renamed over its target, so a reader never sees half a file. A process killed
in between leaves the temporary file behind; the writers' own folders are
tidied with `remove_stale` when they next start.
"""

import glob
import logging
import os
import tempfile
import time

log = logging.getLogger(__name__)

# A temporary file left alone this long (seconds since its last write) is no
# write in progress: another process may be writing into the same folder right
# now. $MRCNN_PARTIAL_SAVE_GRACE_S overrides it (the fault-injection tests use 0).
GRACE_S = 600.0


def write_text_atomically(path, text, prefix=".tmp-", suffix="", newline=None):
    """Write `text` to `path` through a temporary file in its folder and a rename.

    The folder is created. The temporary file is named ``<prefix>*<suffix>``
    (the writers' `remove_stale` patterns) and removed if the write fails.
    `newline` is ``open``'s (``""`` for CSV text that holds its own line ends).

    Returns:
        `path`.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=suffix)
    try:
        with os.fdopen(fd, "w", newline=newline) as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def grace_s():
    """Seconds after its last write that a temporary file counts as abandoned."""
    value = os.environ.get("MRCNN_PARTIAL_SAVE_GRACE_S")
    if value is None:
        return GRACE_S
    try:
        return max(float(value), 0.0)
    except ValueError:
        raise ValueError(f"$MRCNN_PARTIAL_SAVE_GRACE_S must be a number of seconds, got "
                         f"{value!r}") from None


def remove_stale(folder, patterns, older_than=None, what="a save"):
    """Delete the files of `folder` matching the glob `patterns`.

    Args:
        folder: the folder (not searched recursively).
        patterns: glob patterns of temporary files, e.g. ``(".tmp-*.h5",)``.
        older_than: only files not written for this many seconds (None: all).
        what: how the log message names the writer.

    Returns:
        The paths removed (each is logged as a warning).
    """
    removed = []
    now = time.time()
    folder = glob.escape(os.fspath(folder))
    for path in sorted({p for pattern in patterns for p in glob.glob(os.path.join(folder, pattern))}):
        try:
            if not os.path.isfile(path) or (
                    older_than is not None and now - os.path.getmtime(path) < older_than):
                continue
            os.remove(path)
        except FileNotFoundError:      # removed meanwhile by another process
            continue
        removed.append(path)
        log.warning("removed %s, left by %s that did not finish", path, what)
    return removed

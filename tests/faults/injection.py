"""Kill this process with SIGKILL at one of the library's own write points.

Used by `tests/faults/victim.py` (the training process the fault tests
kill). A fault is chosen by a spec string (the victim reads it from
``$MRCNN_FAULT``)::

    KIND:K[:PHASE]

    checkpoint:K:partial   the K-th checkpoint write of this process, after part
                           of its temporary HDF5 file is written (some arrays,
                           flushed to disk)
    checkpoint:K:rename    the K-th checkpoint write, its temporary file
                           complete and closed, just before ``os.replace``
    cache:K:partial        the K-th disk-cache entry write, half of its bytes
                           in the temporary file (flushed and fsynced)
    cache:K:rename         the K-th cache entry write, temporary file complete,
                           just before ``os.replace``
    history:K:partial|rename   the K-th rewrite of ``history.csv``
    config:K:partial|rename    the K-th write of ``config.json``
    step:K:begin|end       the K-th training step of this process (a Keras
                           callback's ``on_train_batch_begin`` / ``_end``)

Nothing in the library is edited: the write points are found by wrapping
what the library calls (``tempfile.mkstemp``, ``os.fdopen``, ``os.replace``,
``h5py.Group.create_dataset``). A temporary file is classified by its name
as the library makes it (``.tmp-*.h5`` checkpoints, ``.tmp-history-*.csv``,
``.tmp-*.json`` config, ``.<key>.*.tmp`` in the cache folder); K counts the
writes of that kind in this process, from 1. Before dying, the process
prints one line ``FAULT {json}`` (the spec and the file) and flushes it, so
the parent can tell the planned kill from a crash.
"""

import fnmatch
import json
import os
import signal
import sys
import tempfile
import threading

KINDS = ("checkpoint", "cache", "history", "config", "step")
PHASES = {"checkpoint": ("partial", "rename"), "cache": ("partial", "rename"),
          "history": ("partial", "rename"), "config": ("partial", "rename"),
          "step": ("begin", "end")}
# A partial checkpoint holds this many arrays (of 116 in the tiny model) when killed.
PARTIAL_CHECKPOINT_ARRAYS = 40
FAULT_PREFIX = "FAULT "


class FaultSpec:
    """A parsed ``KIND:K[:PHASE]``.

    Raises:
        ValueError: naming the spec and the valid kinds / phases.
    """

    def __init__(self, text):
        parts = str(text).split(":")
        if len(parts) not in (2, 3) or parts[0] not in KINDS:
            raise ValueError(f"fault spec {text!r}: expected KIND:K[:PHASE] with KIND one of "
                             f"{KINDS}")
        self.kind = parts[0]
        try:
            self.index = int(parts[1])
        except ValueError:
            raise ValueError(f"fault spec {text!r}: K must be a positive integer, got "
                             f"{parts[1]!r}") from None
        if self.index < 1:
            raise ValueError(f"fault spec {text!r}: K must be >= 1, got {self.index}")
        self.phase = parts[2] if len(parts) == 3 else PHASES[self.kind][0]
        if self.phase not in PHASES[self.kind]:
            raise ValueError(f"fault spec {text!r}: PHASE of {self.kind} must be one of "
                             f"{PHASES[self.kind]}, got {self.phase!r}")

    def __str__(self):
        return f"{self.kind}:{self.index}:{self.phase}"


def die(spec, **details):
    """Print ``FAULT {json}``, flush, and SIGKILL this process (no cleanup runs)."""
    sys.stdout.write(FAULT_PREFIX + json.dumps({"fault": str(spec), **details}) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def classify(path, cache_dir):
    """The kind of write a temporary file made by the library belongs to, or None."""
    name = os.path.basename(path)
    if fnmatch.fnmatch(name, ".tmp-history-*.csv"):
        return "history"
    if fnmatch.fnmatch(name, ".tmp-*.json"):
        return "config"
    if fnmatch.fnmatch(name, ".tmp-*.h5"):
        return "checkpoint"
    if cache_dir and fnmatch.fnmatch(name, ".*.tmp"):
        inside = os.path.commonpath([os.path.realpath(path), os.path.realpath(cache_dir)])
        if inside == os.path.realpath(cache_dir):
            return "cache"
    return None


def _identity(stat):
    return stat.st_dev, stat.st_ino


class _PartialFile:
    """A file whose first ``write`` stores half of its bytes, syncs them, then kills."""

    def __init__(self, file, spec, path):
        self._file, self._spec, self._path = file, spec, path

    def write(self, data):
        keep = max(1, len(data) // 2)
        self._file.write(data[:keep])
        self._file.flush()
        os.fsync(self._file.fileno())
        die(self._spec, path=self._path, written=keep, of=len(data))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._file.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._file, name)


class Injector:
    """Arms one fault: wraps the write points and counts the writes of each kind.

    Args:
        spec: a `FaultSpec`, its text, or None (count only, never kill).
        cache_dir: the disk cache folder (its temporary files are cache writes).
        partial_arrays: arrays a ``checkpoint:K:partial`` file holds when killed.
    """

    def __init__(self, spec, cache_dir=None, partial_arrays=PARTIAL_CHECKPOINT_ARRAYS):
        self.spec = FaultSpec(spec) if isinstance(spec, str) else spec
        self.cache_dir = cache_dir
        self.partial_arrays = int(partial_arrays)
        self.counts = dict.fromkeys(KINDS, 0)
        self._temps = {}           # realpath -> (kind, index) of temporary files made
        self._fds = {}             # fd -> (realpath, file identity), until os.fdopen takes it
        self._datasets = {}        # checkpoint realpath -> arrays written
        self._lock = threading.Lock()
        self._installed = False

    def _targets(self, kind, index, phase):
        s = self.spec
        return s is not None and (s.kind, s.index, s.phase) == (kind, index, phase)

    # ------------------------------------------------------------ wrapping
    def install(self):
        """Wrap ``tempfile.mkstemp``, ``os.fdopen``, ``os.replace`` and h5py's create_dataset."""
        if self._installed:
            return self
        import h5py

        real_mkstemp, real_fdopen, real_replace = tempfile.mkstemp, os.fdopen, os.replace
        real_create = h5py.Group.create_dataset
        injector = self

        def mkstemp(*args, **kwargs):
            fd, path = real_mkstemp(*args, **kwargs)
            kind = classify(path, injector.cache_dir)
            if kind is not None:
                with injector._lock:
                    injector.counts[kind] += 1
                    injector._temps[os.path.realpath(path)] = (kind, injector.counts[kind])
                    injector._fds[fd] = (os.path.realpath(path), _identity(os.fstat(fd)))
            return fd, path

        def fdopen(fd, *args, **kwargs):
            with injector._lock:
                path, identity = injector._fds.pop(fd, (None, None))
            if path is not None and identity != _identity(os.fstat(fd)):
                path = None          # the library closed that fd; the number was reused
            file = real_fdopen(fd, *args, **kwargs)
            kind, index = injector._temps.get(path, (None, None))
            if kind is not None and injector._targets(kind, index, "partial"):
                return _PartialFile(file, injector.spec, path)
            return file

        def replace(src, dst, *args, **kwargs):
            kind, index = injector._temps.get(os.path.realpath(os.fspath(src)), (None, None))
            if kind is not None and injector._targets(kind, index, "rename"):
                die(injector.spec, path=os.fspath(src), target=os.fspath(dst))
            return real_replace(src, dst, *args, **kwargs)

        def create_dataset(group, name, *args, **kwargs):
            dataset = real_create(group, name, *args, **kwargs)
            path = os.path.realpath(group.file.filename)
            kind, index = injector._temps.get(path, (None, None))
            if kind == "checkpoint" and injector._targets(kind, index, "partial"):
                with injector._lock:
                    written = injector._datasets[path] = injector._datasets.get(path, 0) + 1
                if written >= injector.partial_arrays:
                    group.file.flush()
                    die(injector.spec, path=path, arrays_written=written)
            return dataset

        tempfile.mkstemp, os.fdopen, os.replace = mkstemp, fdopen, replace
        h5py.Group.create_dataset = create_dataset
        self._installed = True
        return self

    def callback(self):
        """A Keras callback counting training steps (and killing at a ``step`` fault)."""
        import keras

        injector = self

        class StepFault(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                injector.counts["step"] += 1
                if injector._targets("step", injector.counts["step"], "begin"):
                    die(injector.spec, step=injector.counts["step"], batch=batch)

            def on_train_batch_end(self, batch, logs=None):
                if injector._targets("step", injector.counts["step"], "end"):
                    die(injector.spec, step=injector.counts["step"], batch=batch)

        return StepFault()

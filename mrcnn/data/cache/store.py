"""The sample cache: entries kept in memory or as files on disk.

Modes (Config.CACHE, see `open_cache`):
- True / "memory": a dict of compressed entries in this process. Worker
  threads share it. With ``use_multiprocessing`` each worker process has its
  own, and Keras starts new worker processes every epoch, so use "disk".
- "disk": one file per entry under ``<directory>/v<FORMAT_VERSION>/``,
  written to a temporary file and renamed (``os.replace``), so processes
  sharing the folder never read a torn entry; it survives restarts. Folders
  of other format versions are not read (opening the cache logs their size,
  so they can be deleted).

An entry is written to ``.<key>.p<pid>-<host>.<random>.tmp`` beside its file
and renamed: two processes writing the same key each rename a complete file
(the last one wins; both hold the same sample). Opening a disk cache removes
the temporary files of writes that provably ended without their rename: the
writer (named in the file) is a process of this host that is gone, or one
whose process id now belongs to a process started after the file was last
written. A live writer's file is never removed; files of other hosts (a
shared file system) and of older versions (no writer in the name) go when
untouched for `mrcnn.data.tempfiles.grace_s`.

A cache opened with ``writes=False`` only reads (the processes of a
TensorFlow job that are not the chief: they prepare the same samples as the
chief at the same time, `mrcnn.data.generator.make_generators`).

Past ``max_bytes`` (Config.CACHE_MAX_BYTES) new entries are not stored
(samples are computed without caching). On disk the size is counted at
opening plus what this cache and its worker processes wrote since. A corrupt
or truncated entry, or one recorded under another key (a file copied or
swapped onto another entry's name), is logged once, counted as corrupt, and
reported as a miss so the caller recomputes and overwrites it.
"""

import logging
import os
import re
import socket
import tempfile
import threading
import time

from mrcnn.data import tempfiles
from mrcnn.data.cache.entry import FORMAT_VERSION, CacheEntryError, decode_entry, encode_entry
from mrcnn.data.cache.stats import SharedCounters

log = logging.getLogger(__name__)

__all__ = ["SampleCache", "open_cache"]

_SUFFIX = ".lz4"
_TMP_SUFFIX = ".tmp"  # an entry being written (renamed to <key>.lz4 when complete)
# .<key>.p<pid>-<host>.<random>.tmp: the writer's process id and host
_TMP_NAME = re.compile(r"\.[^.]+\.p(?P<pid>\d+)-(?P<host>[A-Za-z0-9-]+)\.[^.]+" + re.escape(_TMP_SUFFIX))


def _host():
    """This host's name as temporary file names hold it."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname())[:64] or "host"


def _process_started(pid):
    """When process `pid` of this host started (seconds since the epoch), or None if unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as f:
            boot = next(float(line.split()[1]) for line in f if line.startswith("btime"))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def writer_alive(pid, written):
    """Whether process `pid` of this host may still be writing a file last written at `written`.

    False when there is no such process, or when the process of that id
    started after the file was written (the id was reused); True otherwise
    (including when that cannot be told).
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass                              # alive, another user's
    started = _process_started(pid)
    return started is None or started <= written + 1.0


class SampleCache:
    """Dict-of-arrays cache with LZ4 compression, in memory or on disk.

    Args:
        directory: folder of the disk cache, or None for an in-memory cache.
        max_bytes: budget of compressed bytes (None: unlimited).
        writes: False to only read (`put` stores nothing and returns False).

    Example::

        cache = SampleCache("logs/cache", max_bytes=4 * 2**30)
        arrays = cache.get(key)
        if arrays is None:
            arrays = compute()
            cache.put(key, arrays)
    """

    def __init__(self, directory=None, max_bytes=None, writes=True):
        if max_bytes is not None and max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0 or None, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self.writes = bool(writes)
        self.directory = None if directory is None else os.path.abspath(os.fspath(directory))
        self._memory = {}
        self._lock = threading.Lock()
        self._logged = set()
        entries = size = 0
        if self.directory is not None:
            os.makedirs(self._root(), exist_ok=True)
            self._remove_abandoned_writes()
            entries, size = self._scan(self._root())
            self._report_old_formats()
        self._counters = SharedCounters()
        self._counters.add(entries=entries, size_bytes=size)

    @property
    def mode(self):
        """"memory" or "disk"."""
        return "memory" if self.directory is None else "disk"

    def __repr__(self):
        where = f"directory={self.directory!r}, " if self.directory else ""
        return f"SampleCache({where}max_bytes={self.max_bytes!r})"

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_lock")
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # ------------------------------------------------------------ public
    def stats(self):
        """A `CacheStats` snapshot (counts of this cache and its worker processes)."""
        return self._counters.snapshot()

    def get(self, key):
        """The arrays stored under `key`, or None (missing or corrupt entry)."""
        blob = self._read(key)
        if blob is None:
            self._counters.add(misses=1)
            return None
        try:
            arrays = decode_entry(blob, key)
        except CacheEntryError as error:
            self._counters.add(misses=1, corrupt=1)
            self._log_once(key, logging.WARNING, "cache entry %s is corrupt (%s); recomputing it",
                           self._describe(key), error)
            return None
        raw = sum(a.nbytes for a in arrays.values())
        self._counters.add(hits=1, read_bytes=len(blob), read_raw=raw)
        return arrays

    def put(self, key, arrays):
        """Store `arrays` under `key` (replacing any entry).

        Returns:
            True if stored; False past the byte budget, on an I/O error
            (the caller just goes on without caching) or for a cache opened
            with ``writes=False``.
        """
        if not self.writes:
            return False
        blob, raw = encode_entry(arrays, key)
        if self.max_bytes is not None and self.stats().size_bytes + len(blob) > self.max_bytes:
            self._counters.add(skipped=1)
            self._log_once("budget", logging.WARNING,
                           "sample cache is full (CACHE_MAX_BYTES=%d); further samples are "
                           "computed without caching", self.max_bytes)
            return False
        try:
            replaced = self._write(key, blob)
        except OSError as error:
            self._counters.add(skipped=1)
            self._log_once("write-error", logging.WARNING,
                           "cannot write to the sample cache %s (%s); going on without "
                           "caching new samples", self.directory, error)
            return False
        self._counters.add(writes=1, write_bytes=len(blob), write_raw=raw,
                           entries=int(replaced is None),
                           size_bytes=len(blob) - (replaced or 0))
        return True

    def get_or_compute(self, key, compute):
        """`get(key)`, or ``compute()`` stored under `key` on a miss."""
        arrays = self.get(key)
        if arrays is None:
            arrays = compute()
            self.put(key, arrays)
        return arrays

    def path(self, key):
        """File of `key` in a disk cache."""
        if self.directory is None:
            raise ValueError("an in-memory cache has no files")
        return os.path.join(self._root(), key[:2], key + _SUFFIX)

    # ------------------------------------------------------------ storage
    def _root(self):
        return os.path.join(self.directory, f"v{FORMAT_VERSION}")

    def _describe(self, key):
        return self.path(key) if self.directory else key

    def _scan(self, root):
        """(entry files, bytes) under `root`."""
        entries = size = 0
        for folder, _, names in os.walk(root):
            for name in names:
                if name.endswith(_SUFFIX):
                    try:
                        size += os.path.getsize(os.path.join(folder, name))
                        entries += 1
                    except OSError:  # removed meanwhile by another process
                        continue
        return entries, size

    def _remove_abandoned_writes(self):
        """Delete the temporary files of entry writes that ended without their rename (`_write`).

        See the module docstring: a file naming a writer of this host goes
        when that writer is gone (`writer_alive`), never while it lives; any
        other (another host's, an older name) when not written for
        `mrcnn.data.tempfiles.grace_s` seconds.

        Returns:
            The paths removed (each is logged).
        """
        grace, host, now = tempfiles.grace_s(), _host(), time.time()
        removed = []
        for folder, _, names in os.walk(self._root()):
            for name in names:
                if not name.endswith(_TMP_SUFFIX):
                    continue
                path = os.path.join(folder, name)
                try:
                    written = os.path.getmtime(path)
                    m = _TMP_NAME.fullmatch(name)
                    if m and m.group("host") == host:
                        abandoned = not writer_alive(int(m.group("pid")), written)
                    else:
                        abandoned = now - written >= grace
                    if not abandoned:
                        continue
                    os.remove(path)
                except FileNotFoundError:      # renamed or removed meanwhile
                    continue
                removed.append(path)
                log.warning("removed %s, left by a cache entry write that did not finish", path)
        return removed

    def _report_old_formats(self):
        """Log the folders of other FORMAT_VERSIONs (never read, never deleted: maybe shared)."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        for name in sorted(names):
            folder = os.path.join(self.directory, name)
            if (name[:1] == "v" and name[1:].isdigit() and int(name[1:]) != FORMAT_VERSION
                    and os.path.isdir(folder)):
                entries, size = self._scan(folder)
                log.warning("sample cache %s holds %d entry files (%.1f MB) of format version %s, "
                         "which this version of mrcnn does not read (it writes v%d); delete "
                         "that folder to free the space unless an older mrcnn still uses it",
                         folder, entries, size / 2 ** 20, name[1:], FORMAT_VERSION)

    def _read(self, key):
        if self.directory is None:
            return self._memory.get(key)
        try:
            with open(self.path(key), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as error:
            self._log_once(("read", key), logging.WARNING, "cannot read cache entry %s (%s)",
                           self.path(key), error)
            return None

    def _write(self, key, blob):
        """Store a blob; returns the size of the entry it replaced, or None."""
        if self.directory is None:
            with self._lock:
                old = self._memory.get(key)
                self._memory[key] = blob
            return None if old is None else len(old)
        path = self.path(key)
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        try:
            old = os.path.getsize(path)
        except OSError:
            old = None
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}.p{os.getpid()}-{_host()}.",
                                   suffix=_TMP_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, path)  # atomic: readers see the old or the new file
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return old

    def _log_once(self, token, level, message, *args):
        with self._lock:
            if token in self._logged:
                return
            self._logged.add(token)
        log.log(level, message, *args)


def open_cache(config, model_dir=None, writes=True):
    """The sample cache selected by Config.CACHE, or None.

    Args:
        config: a Config with CACHE (False/None, True/"memory", "disk"),
            CACHE_DIR and CACHE_MAX_BYTES.
        model_dir: the model's log folder; the disk cache defaults to
            ``<model_dir>/cache``.
        writes: False for a disk cache that only reads (`SampleCache`); an
            in-memory cache is this process's own and always stores.

    Returns:
        a `SampleCache` or None.
    """
    mode = config.CACHE
    if mode is None or mode is False:
        return None
    if mode is True or mode == "memory":
        return SampleCache(None, config.CACHE_MAX_BYTES)         # this process's own
    if mode == "disk":
        directory = config.CACHE_DIR
        if directory is None:
            if model_dir is None:
                raise ValueError("CACHE='disk' needs Config.CACHE_DIR or a model_dir "
                                 "(the cache goes to <model_dir>/cache)")
            directory = os.path.join(model_dir, "cache")
        return SampleCache(directory, config.CACHE_MAX_BYTES, writes=writes)
    raise ValueError(f"Config.CACHE must be False, True (in memory) or 'disk', got {mode!r}")

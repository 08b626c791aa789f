"""LZ4 cache of prepared training samples, in memory or on disk.

Preparing a sample (image decode, hundreds of RLE mask decodes, resizing,
boxes, mini masks) is the CPU cost that starves the GPU on a 2-core Kaggle
machine (seed 000). The generator caches the deterministic part of that work
here; random augmentation runs after the cache, so every epoch stays random.

An entry is a dict of NumPy arrays, serialized as::

    header  magic "MRCNNLZ4", format version, manifest length,
            raw payload length, compressed length, CRC-32 of manifest + payload
    manifest  JSON list of (name, dtype, shape, encoding)
    payload   LZ4 block of the concatenated array bytes

Bool arrays are bit-packed (``np.packbits``) before compression and
``[..., C]`` arrays whose channels are all equal (gray images stored as RGB)
keep one channel. Every read checks the header, lengths and CRC; a corrupt or
truncated entry is logged once, counted, and reported as a miss so the
caller recomputes and overwrites it: never a crash, never wrong data.

Modes (Config.CACHE):
- True / "memory": a dict of compressed entries in this process. Worker
  threads share it. With ``use_multiprocessing`` each worker process has its
  own, and Keras starts new worker processes every epoch, so use "disk".
- "disk": one file per entry under ``<directory>/v<FORMAT_VERSION>/``,
  written to a temporary file and renamed (``os.replace``), so processes
  sharing the folder never read a torn entry; it survives restarts.

Past ``max_bytes`` (Config.CACHE_MAX_BYTES) new entries are not stored
(samples are computed without caching). On disk the size is counted at
opening plus what this cache and its worker processes wrote since.

Keys (`sample_key`) hash everything that changes a prepared sample: the
dataset class, the image's identity (``dataset.cache_key(image_id)`` when the
dataset defines it, else its ``image_info`` entry plus the file's size and
modification time), the dataset's classes, the config fields used and
FORMAT_VERSION. Changing any of them misses the cache.

Hit/miss counters and byte counts are shared with worker processes and
reported per epoch by `mrcnn.training.callbacks.CacheStatsLogger`.
"""

import hashlib
import json
import logging
import multiprocessing
import multiprocessing.context
import os
import pickle
import struct
import tempfile
import threading
import zlib
from dataclasses import dataclass, fields

import lz4.block
import numpy as np

log = logging.getLogger(__name__)

__all__ = ["FORMAT_VERSION", "CacheEntryError", "CacheStats", "SampleCache", "encode_entry",
           "decode_entry", "sample_key", "digest", "open_cache"]

FORMAT_VERSION = 1
MAGIC = b"MRCNNLZ4"
_HEADER = struct.Struct("<8sIIQQI")  # magic, version, manifest, raw, compressed, crc32
_SUFFIX = ".lz4"


class CacheEntryError(ValueError):
    """A cache entry is truncated, corrupt or of another format version."""


# ---------------------------------------------------------------- encoding
def _encode_array(array):
    """(bytes, manifest row) of one array."""
    array = np.asarray(array)
    shape = list(array.shape)
    encoding = "raw"
    if array.dtype == bool:
        encoding = "bits"
        data = np.packbits(array, axis=None)
    elif array.ndim == 3 and 1 < array.shape[-1] <= 4 and array.size \
            and all(np.array_equal(array[..., 0], array[..., c]) for c in range(1, shape[-1])):
        encoding = "repeat"
        data = array[..., :1]
    else:
        data = array
    data = np.ascontiguousarray(data)
    return data.tobytes(), [array.dtype.str, shape, encoding, data.nbytes]


def encode_entry(arrays):
    """Serialize a dict of arrays into one LZ4-compressed, checksummed blob.

    Args:
        arrays: {name: ndarray}; numeric or bool dtypes.

    Returns:
        (blob bytes, raw size in bytes of the arrays before compression).
    """
    manifest, chunks, raw = [], [], 0
    for name, array in arrays.items():
        array = np.asarray(array)
        if array.dtype.kind not in "biufc":
            raise TypeError(f"cache entries hold numeric or bool arrays; {name!r} has dtype "
                            f"{array.dtype}")
        data, row = _encode_array(array)
        manifest.append([str(name)] + row)
        chunks.append(data)
        raw += array.nbytes
    manifest_bytes = json.dumps(manifest, separators=(",", ":")).encode()
    payload = b"".join(chunks)
    compressed = lz4.block.compress(payload, store_size=False) if payload else b""
    crc = zlib.crc32(compressed, zlib.crc32(manifest_bytes))
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, len(manifest_bytes), len(payload),
                          len(compressed), crc)
    return header + manifest_bytes + compressed, raw


def _entry_parts(blob):
    """(manifest, compressed payload, raw length) of a verified blob, or CacheEntryError."""
    if len(blob) < _HEADER.size:
        raise CacheEntryError(f"truncated: {len(blob)} bytes, shorter than the "
                              f"{_HEADER.size}-byte header")
    magic, version, manifest_len, raw_len, comp_len, crc = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise CacheEntryError(f"bad magic {magic!r}, expected {MAGIC!r}")
    if version != FORMAT_VERSION:
        raise CacheEntryError(f"format version {version}, expected {FORMAT_VERSION}")
    expected = _HEADER.size + manifest_len + comp_len
    if len(blob) != expected:
        raise CacheEntryError(f"length {len(blob)} bytes, header says {expected}")
    body = memoryview(blob)[_HEADER.size:]
    manifest_bytes, compressed = body[:manifest_len], body[manifest_len:]
    if zlib.crc32(compressed, zlib.crc32(manifest_bytes)) != crc:
        raise CacheEntryError("checksum mismatch")
    try:
        manifest = json.loads(bytes(manifest_bytes))
    except ValueError as error:
        raise CacheEntryError(f"unreadable manifest ({error})") from None
    return manifest, compressed, raw_len


def decode_entry(blob):
    """Arrays of a blob made by `encode_entry` (writable copies).

    Raises:
        CacheEntryError: the blob is truncated, corrupt or of another format.
    """
    manifest, compressed, raw_len = _entry_parts(blob)
    try:
        payload = lz4.block.decompress(compressed, uncompressed_size=raw_len,
                                       return_bytearray=True) if raw_len else bytearray()
    except lz4.block.LZ4BlockError as error:
        raise CacheEntryError(f"LZ4 payload does not decompress ({error})") from None
    if len(payload) != raw_len:
        raise CacheEntryError(f"payload is {len(payload)} bytes, header says {raw_len}")
    arrays, offset = {}, 0
    try:
        for name, dtype, shape, encoding, nbytes in manifest:
            data = np.frombuffer(payload, np.uint8, count=nbytes, offset=offset)
            offset += nbytes
            dtype = np.dtype(dtype)
            if encoding == "bits":
                size = int(np.prod(shape))
                array = np.unpackbits(data, count=size).view(bool).reshape(shape)
            elif encoding == "repeat":
                plane = data.view(dtype).reshape(shape[:-1] + [1])
                array = np.repeat(plane, shape[-1], axis=-1)
            else:
                array = data.view(dtype).reshape(shape)
            arrays[name] = array
    except (ValueError, TypeError) as error:
        raise CacheEntryError(f"manifest does not match the payload ({error})") from None
    if offset != raw_len:
        raise CacheEntryError(f"manifest covers {offset} of {raw_len} payload bytes")
    return arrays


# ---------------------------------------------------------------- keys
def _feed(h, obj):
    """Hash a canonical serialization of builtins, NumPy values and containers."""
    if obj is None or isinstance(obj, (bool, int, float, complex)):
        h.update(b"p" + repr(obj).encode() + b";")
    elif isinstance(obj, str):
        data = obj.encode()
        h.update(b"s%d:" % len(data) + data)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
        h.update(b"b%d:" % len(data) + data)
    elif isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            h.update(b"o" + repr(obj.shape).encode())
            _feed(h, obj.tolist())
        else:
            h.update(b"a" + obj.dtype.str.encode() + repr(obj.shape).encode())
            h.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, np.generic):
        _feed(h, obj.item())
    elif isinstance(obj, dict):
        h.update(b"d%d:" % len(obj))
        for key in sorted(obj, key=repr):
            _feed(h, key)
            _feed(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(b"l%d:" % len(obj))
        for item in obj:
            _feed(h, item)
    elif isinstance(obj, (set, frozenset)):
        _feed(h, sorted(obj, key=repr))
    elif isinstance(obj, os.PathLike):
        _feed(h, os.fspath(obj))
    else:
        try:
            data = pickle.dumps(obj, protocol=4)
        except Exception:  # unpicklable objects: fall back to their repr
            data = repr(obj).encode()
        h.update(b"x" + type(obj).__qualname__.encode() + b"%d:" % len(data) + data)


def digest(*parts):
    """Hex digest (32 chars) of a canonical serialization of `parts`."""
    h = hashlib.blake2b(digest_size=16)
    _feed(h, parts)
    return h.hexdigest()


def _file_stamp(path):
    if isinstance(path, (str, os.PathLike)):
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns
    return None


def sample_key(dataset, image_id, fields, kind):
    """Cache key of one prepared sample.

    Args:
        dataset: the Dataset. If it defines ``cache_key(image_id)`` returning
            a value other than None (anything `digest` takes), that identifies
            the image; otherwise
            its ``image_info`` entry and, when ``path`` names a file, that
            file's size and modification time. Datasets whose masks live in
            other files should define ``cache_key`` to include them.
        image_id: internal image id.
        fields: {name: value} of the config fields the preparation uses.
        kind: name of the prepared representation.

    Returns:
        32-character hex string.
    """
    custom = getattr(dataset, "cache_key", None)
    custom = custom(image_id) if callable(custom) else None
    if custom is not None:
        identity = ("custom", custom)
    else:
        info = dataset.image_info[image_id]
        identity = ("info", info, _file_stamp(info.get("path")))
    cls = type(dataset)
    module = "__main__" if cls.__module__ == "__mp_main__" else cls.__module__  # spawned workers
    return digest("sample", FORMAT_VERSION, kind, f"{module}.{cls.__qualname__}",
                  identity, dataset.class_info, fields)


# ---------------------------------------------------------------- statistics
@dataclass(frozen=True)
class CacheStats:
    """Counters of a cache; subtract two snapshots for the numbers of an epoch.

    Attributes:
        hits, misses: lookups that found / did not find a valid entry.
        corrupt: entries found corrupt (also counted as misses).
        writes: entries stored; skipped: entries not stored (budget, I/O error).
        read_bytes, read_raw: compressed / uncompressed bytes of the hits.
        write_bytes, write_raw: compressed / uncompressed bytes of the writes.
        entries, size_bytes: what the cache holds (disk: found at opening plus
            written since).
    """

    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    writes: int = 0
    skipped: int = 0
    read_bytes: int = 0
    read_raw: int = 0
    write_bytes: int = 0
    write_raw: int = 0
    entries: int = 0
    size_bytes: int = 0

    def __sub__(self, other):
        return CacheStats(**{f.name: getattr(self, f.name) - getattr(other, f.name)
                             for f in fields(self)})

    @property
    def lookups(self):
        return self.hits + self.misses

    @property
    def hit_rate(self):
        """Hits / lookups (0 without lookups)."""
        return self.hits / self.lookups if self.lookups else 0.0

    @property
    def ratio(self):
        """Compression ratio, uncompressed / compressed, over reads and writes."""
        stored = self.read_bytes + self.write_bytes
        return (self.read_raw + self.write_raw) / stored if stored else 0.0

    def activity(self):
        """Lookups and writes: "hits 590 (97.4%), misses 16, corrupt 0, stored 16 (skipped 0)"."""
        return (f"hits {self.hits} ({100 * self.hit_rate:.1f}%), misses {self.misses}, "
                f"corrupt {self.corrupt}, stored {self.writes} (skipped {self.skipped})")

    def holdings(self):
        """Contents, e.g. "606 entries, 412.3 MB, compression 3.10x"."""
        return (f"{self.entries} entries, {self.size_bytes / 2 ** 20:.1f} MB, "
                f"compression {self.ratio:.2f}x")

    def summary(self):
        """One line for the training log."""
        return f"{self.activity()}; cache holds {self.holdings()}"


_COUNTERS = ("hits", "misses", "corrupt", "writes", "skipped", "read_bytes", "read_raw",
             "write_bytes", "write_raw", "entries", "size_bytes")


class _LocalArray(list):
    """Stand-in for multiprocessing.Array where shared memory is unavailable."""

    def __init__(self, size):
        super().__init__([0] * size)
        self._lock = threading.Lock()

    def get_lock(self):
        return self._lock

    def __reduce__(self):
        return (_LocalArray, (len(self),))


class _Counters:
    """Integer counters in shared memory, so worker processes update the parent's."""

    def __init__(self, values=None):
        try:
            self._array = multiprocessing.Array("q", len(_COUNTERS))
        except OSError:  # no shared memory here: counters of this process only
            self._array = _LocalArray(len(_COUNTERS))
        for i, value in enumerate(values or ()):
            self._array[i] = value

    def add(self, **amounts):
        with self._array.get_lock():
            for name, amount in amounts.items():
                self._array[_COUNTERS.index(name)] += int(amount)

    def snapshot(self):
        with self._array.get_lock():
            return CacheStats(*self._array[:])

    def __getstate__(self):
        # Shared memory travels only to processes being started (spawn);
        # any other copy (pickle, deepcopy) gets independent counters.
        if multiprocessing.context.get_spawning_popen() is not None:
            return {"array": self._array}
        return {"values": list(self._array[:])}

    def __setstate__(self, state):
        if "array" in state:
            self._array = state["array"]
        else:
            self.__init__(state["values"])


# ---------------------------------------------------------------- the cache
class SampleCache:
    """Dict-of-arrays cache with LZ4 compression, in memory or on disk.

    Args:
        directory: folder of the disk cache, or None for an in-memory cache.
        max_bytes: budget of compressed bytes (None: unlimited).

    Example::

        cache = SampleCache("logs/cache", max_bytes=4 * 2**30)
        arrays = cache.get(key)
        if arrays is None:
            arrays = compute()
            cache.put(key, arrays)
    """

    def __init__(self, directory=None, max_bytes=None):
        if max_bytes is not None and max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0 or None, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self.directory = None if directory is None else os.path.abspath(os.fspath(directory))
        self._memory = {}
        self._lock = threading.Lock()
        self._logged = set()
        entries = size = 0
        if self.directory is not None:
            os.makedirs(self._root(), exist_ok=True)
            entries, size = self._scan()
        self._counters = _Counters()
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
            arrays = decode_entry(blob)
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
            True if stored; False past the byte budget or on an I/O error
            (the caller just goes on without caching).
        """
        blob, raw = encode_entry(arrays)
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

    def _scan(self):
        entries = size = 0
        for folder, _, names in os.walk(self._root()):
            for name in names:
                if name.endswith(_SUFFIX):
                    try:
                        size += os.path.getsize(os.path.join(folder, name))
                        entries += 1
                    except OSError:  # removed meanwhile by another process
                        continue
        return entries, size

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
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".tmp")
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


def open_cache(config, model_dir=None):
    """The sample cache selected by Config.CACHE, or None.

    Args:
        config: a Config with CACHE (False/None, True/"memory", "disk"),
            CACHE_DIR and CACHE_MAX_BYTES.
        model_dir: the model's log folder; the disk cache defaults to
            ``<model_dir>/cache``.

    Returns:
        a `SampleCache` or None.
    """
    mode = config.CACHE
    if mode is None or mode is False:
        return None
    if mode is True or mode == "memory":
        return SampleCache(None, config.CACHE_MAX_BYTES)
    if mode == "disk":
        directory = config.CACHE_DIR
        if directory is None:
            if model_dir is None:
                raise ValueError("CACHE='disk' needs Config.CACHE_DIR or a model_dir "
                                 "(the cache goes to <model_dir>/cache)")
            directory = os.path.join(model_dir, "cache")
        return SampleCache(directory, config.CACHE_MAX_BYTES)
    raise ValueError(f"Config.CACHE must be False, True (in memory) or 'disk', got {mode!r}")

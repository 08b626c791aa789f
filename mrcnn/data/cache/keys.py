"""Cache keys: a stable digest of everything that changes a prepared sample.

`sample_key` hashes the dataset class, the image's identity
(``dataset.cache_key(image_id)`` when the dataset defines it, else its
``image_info`` entry plus the file's size and modification time), the
dataset's classes, the config fields used and FORMAT_VERSION. Changing any of
them gives another key, so the cache misses instead of serving stale data.
"""

import hashlib
import os
import pickle

import numpy as np

from mrcnn.data.cache.entry import FORMAT_VERSION

__all__ = ["digest", "file_stamp", "sample_key"]


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


def file_stamp(path):
    """(size, modification time in ns) of the file `path`, or None (no such file, not a path)."""
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
        identity = ("info", info, file_stamp(info.get("path")))
    cls = type(dataset)
    module = "__main__" if cls.__module__ == "__mp_main__" else cls.__module__  # spawned workers
    # How the image's values are converted (Dataset.IMAGE_BIT_DEPTH) changes the sample.
    bit_depth = getattr(dataset, "IMAGE_BIT_DEPTH", None)
    return digest("sample", FORMAT_VERSION, kind, f"{module}.{cls.__qualname__}",
                  identity, dataset.class_info, fields, repr(bit_depth))

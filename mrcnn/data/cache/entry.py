"""One cache entry: a dict of NumPy arrays as one LZ4-compressed, checksummed blob.

Layout::

    header  magic "MRCNNLZ4", format version, manifest length,
            raw payload length, compressed length, CRC-32 of key fingerprint +
            manifest + payload, key fingerprint (16-byte BLAKE2b of the key
            the entry is stored under; zeros without a key)
    manifest  JSON list of (name, dtype, shape, encoding, stored bytes)
    payload   LZ4 block of the concatenated array bytes

Bool arrays are bit-packed (``np.packbits``) before compression and
``[..., C]`` arrays whose channels are all equal (gray images stored as RGB)
keep one channel. `decode_entry` checks the header, the lengths and the
CRC, and raises `CacheEntryError` for anything truncated, corrupt, of
another FORMAT_VERSION or, when asked for a key, recorded under another key
(an entry file copied or swapped onto another's name is valid data of the
wrong sample). The fingerprint has a fixed size, so an entry's size does not
depend on its key.
"""

import hashlib
import json
import struct
import zlib

import lz4.block
import numpy as np

__all__ = ["FORMAT_VERSION", "MAGIC", "CacheEntryError", "encode_entry", "decode_entry"]

# 2: the header records the entry's key fingerprint (version 1 entries are not read).
FORMAT_VERSION = 2
MAGIC = b"MRCNNLZ4"
# magic, version, manifest, raw, compressed, crc32, key fingerprint
_HEADER = struct.Struct("<8sIIQQI16s")
_NO_KEY = bytes(16)


class CacheEntryError(ValueError):
    """A cache entry is truncated, corrupt, of another format version or of another key."""


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


def encode_entry(arrays, key=None):
    """Serialize a dict of arrays into one LZ4-compressed, checksummed blob.

    Args:
        arrays: {name: ndarray}; numeric or bool dtypes.
        key: the key the entry is stored under (a str); its fingerprint is
            recorded so that `decode_entry` can refuse the entry under
            another key.

    Returns:
        (blob bytes, raw size in bytes of the arrays before compression).
    """
    if key is not None and not isinstance(key, str):
        raise TypeError(f"cache keys are strings, got {type(key).__name__} {key!r}")
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
    fingerprint = _fingerprint(key)
    crc = _crc(fingerprint, manifest_bytes, compressed)
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, len(manifest_bytes), len(payload),
                          len(compressed), crc, fingerprint)
    return header + manifest_bytes + compressed, raw


def _fingerprint(key):
    """16 bytes identifying `key` (zeros for None)."""
    if key is None:
        return _NO_KEY
    return hashlib.blake2b(key.encode(), digest_size=16, person=b"mrcnn-cache-key").digest()


def _crc(fingerprint, manifest_bytes, compressed):
    return zlib.crc32(compressed, zlib.crc32(manifest_bytes, zlib.crc32(fingerprint)))


def _entry_parts(blob):
    """(key fingerprint, manifest, compressed payload, raw length) of a verified blob.

    Raises CacheEntryError for a truncated, corrupt or other-version blob.
    """
    if len(blob) < _HEADER.size:
        raise CacheEntryError(f"truncated: {len(blob)} bytes, shorter than the "
                              f"{_HEADER.size}-byte header")
    magic, version, manifest_len, raw_len, comp_len, crc, fingerprint = \
        _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise CacheEntryError(f"bad magic {magic!r}, expected {MAGIC!r}")
    if version != FORMAT_VERSION:
        raise CacheEntryError(f"format version {version}, expected {FORMAT_VERSION}")
    expected = _HEADER.size + manifest_len + comp_len
    if len(blob) != expected:
        raise CacheEntryError(f"length {len(blob)} bytes, header says {expected}")
    body = memoryview(blob)[_HEADER.size:]
    manifest_bytes, compressed = body[:manifest_len], body[manifest_len:]
    if _crc(fingerprint, manifest_bytes, compressed) != crc:
        raise CacheEntryError("checksum mismatch")
    try:
        manifest = json.loads(bytes(manifest_bytes))
    except ValueError as error:
        raise CacheEntryError(f"unreadable manifest ({error})") from None
    return fingerprint, manifest, compressed, raw_len


def decode_entry(blob, key=None):
    """Arrays of a blob made by `encode_entry` (writable copies).

    Args:
        blob: bytes of one entry.
        key: the key the entry is read under; if given, the entry must have
            been encoded with this key.

    Raises:
        CacheEntryError: the blob is truncated, corrupt, of another format,
            or (with `key`) recorded under another key.
    """
    fingerprint, manifest, compressed, raw_len = _entry_parts(blob)
    if key is not None and fingerprint != _fingerprint(key):
        whose = "an entry stored without a key" if fingerprint == _NO_KEY else \
            "the entry of another key"
        raise CacheEntryError(f"holds {whose}, not of {key!r} (a file copied or swapped "
                              f"onto another entry's name)")
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

import numpy as np
import pytest

from mrcnn.data.cache import FORMAT_VERSION, CacheEntryError, decode_entry, encode_entry

# Backend-independent: cache entry encoding and checksums; no Keras op.
pytestmark = pytest.mark.backend_independent


def test_encode_decode_round_trip_and_compression(example_arrays, assert_same):
    arrays = example_arrays()
    blob, raw = encode_entry(arrays)
    assert raw == sum(a.nbytes for a in arrays.values())
    decoded = decode_entry(blob)
    assert_same(decoded, arrays)
    assert decoded["image"].flags.writeable
    # the repeated gray channels and the bit-packed masks shrink the entry:
    # image 37*29*3 -> 37*29 bytes, masks 715 bools -> 90 bytes
    assert len(blob) < raw - 2 * 37 * 29 - (715 - 90) + 400


@pytest.mark.parametrize("damage", ["flip", "truncate", "magic", "version", "extend"])
def test_damaged_entries_raise(damage, example_arrays):
    blob = bytearray(encode_entry(example_arrays())[0])
    if damage == "flip":
        blob[-10] ^= 0x40
    elif damage == "truncate":
        blob = blob[:len(blob) // 2]
    elif damage == "magic":
        blob[0:8] = b"NOTMRCNN"
    elif damage == "version":
        blob[8] += 1
    else:
        blob += b"\0"
    with pytest.raises(CacheEntryError):
        decode_entry(bytes(blob))


def test_non_numeric_arrays_are_rejected():
    with pytest.raises(TypeError, match="'names' has dtype <U1"):
        encode_entry({"names": np.array(["a", "b"])})


def test_empty_entry_round_trips():
    blob, raw = encode_entry({})
    assert raw == 0 and decode_entry(blob) == {}


def test_entry_records_its_key_and_refuses_another(example_arrays, assert_same):
    arrays = example_arrays()
    blob, _ = encode_entry(arrays, "a" * 32)
    assert_same(decode_entry(blob, "a" * 32), arrays)
    assert_same(decode_entry(blob), arrays)              # no key asked: no check
    with pytest.raises(CacheEntryError, match="holds the entry of another key, not of 'bbbb"):
        decode_entry(blob, "b" * 32)
    unkeyed, _ = encode_entry(arrays)
    with pytest.raises(CacheEntryError, match="holds an entry stored without a key, not of 'a"):
        decode_entry(unkeyed, "a" * 32)
    # the key's fingerprint has a fixed size: entry sizes do not depend on keys
    assert len(unkeyed) == len(blob) == len(encode_entry(arrays, "k")[0])
    with pytest.raises(TypeError, match="cache keys are strings, got int 7"):
        encode_entry(arrays, 7)
    damaged = bytearray(blob)
    damaged[40] ^= 0x01                                  # inside the key fingerprint
    with pytest.raises(CacheEntryError, match="checksum mismatch"):
        decode_entry(bytes(damaged))


def test_entries_of_format_version_1_are_refused(example_arrays):
    # version 1 entries carry no key: they are refused by version, never decoded
    blob = bytearray(encode_entry(example_arrays(), "k")[0])
    assert FORMAT_VERSION == 2
    blob[8:12] = (1).to_bytes(4, "little")
    with pytest.raises(CacheEntryError, match="format version 1, expected 2"):
        decode_entry(bytes(blob), "k")

import numpy as np
import pytest

from mrcnn.data.cache import CacheEntryError, decode_entry, encode_entry


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

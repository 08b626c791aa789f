"""The checks of tests/faults/test_kill_and_resume.py find what they look for (fast)."""

import hashlib
import os
import shutil

import h5py
import numpy as np
import pytest

from tests.faults import inspection


def test_sha256_of_hashes_little_endian_bytes():
    expected = hashlib.sha256(b"\x01\x00\x00\x00\x02\x00\x00\x00").hexdigest()
    assert inspection.sha256_of(np.array([1, 2], "<i4")) == expected
    assert inspection.sha256_of(np.array([1, 2], ">i4")) == expected
    assert inspection.sha256_of(np.array([[1], [2]], "<i4").T) == expected


@pytest.fixture
def checkpoint(tmp_path):
    import keras

    from mrcnn.weights import save_weights

    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="d1")])
    return save_weights(model, tmp_path / "mask_rcnn_x_0001.h5")


def test_an_intact_checkpoint_has_no_problem(checkpoint):
    assert inspection.checkpoint_problems(checkpoint) == []
    arrays = inspection.checkpoint_arrays(checkpoint)
    assert sorted(arrays) == ["d1/d1/bias:0", "d1/d1/kernel:0"]


def test_a_changed_array_is_found_by_the_library_and_by_the_hash_here(checkpoint):
    with h5py.File(checkpoint, "r+") as f:
        f["d1/d1/kernel:0"][0, 0] += 1.0
    problems = inspection.checkpoint_problems(checkpoint)
    assert len(problems) == 2
    assert "the library's reader refuses it" in problems[0] and "SHA-256" in problems[0]
    assert problems[1] == f"{checkpoint}: d1/d1/kernel:0 does not match its SHA-256"


def test_a_missing_hash_and_a_nan_are_problems(checkpoint):
    with h5py.File(checkpoint, "r+") as f:
        del f["d1/d1/bias:0"].attrs["sha256"]
        kernel = f["d1/d1/kernel:0"][()]
        kernel[1, 2] = np.nan
        f["d1/d1/kernel:0"][()] = kernel
        f["d1/d1/kernel:0"].attrs["sha256"] = inspection.sha256_of(kernel)   # hash matches
    problems = inspection.checkpoint_problems(checkpoint)
    assert f"{checkpoint}: d1/d1/bias:0 has no SHA-256" in problems
    assert f"{checkpoint}: d1/d1/kernel:0 is not finite" in problems
    assert not any("kernel:0 does not match" in p for p in problems)


def test_a_truncated_checkpoint_is_a_problem(checkpoint, tmp_path):
    data = open(checkpoint, "rb").read()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[:len(data) // 2])
    problems = inspection.checkpoint_problems(cut)
    assert problems and all(str(cut) in p for p in problems)


def test_cache_problems_finds_swapped_and_truncated_entries(tmp_path):
    from mrcnn.data.cache import SampleCache

    cache = SampleCache(tmp_path / "cache")
    for key in ("aa11", "bb22", "cc33"):
        cache.put(key, {"x": np.full(50, ord(key[0]))})
    assert inspection.cache_problems(tmp_path / "cache") == []
    assert len(inspection.cache_entry_files(tmp_path / "cache")) == 3
    shutil.copyfile(cache.path("aa11"), cache.path("bb22"))          # another key's data
    with open(cache.path("cc33"), "r+b") as f:
        f.truncate(20)
    problems = inspection.cache_problems(tmp_path / "cache")
    assert [os.path.basename(p.split(":")[0]) for p in problems] == ["bb22.lz4", "cc33.lz4"]
    assert "not of 'bb22'" in problems[0] and "truncated" in problems[1]


def test_temp_key_reads_the_key_of_a_cache_temporary_file():
    assert inspection.temp_key("/c/v2/01/.0123abcd.k9_x.tmp") == "0123abcd"


HEADER = "epoch,loss,val_loss\n"


@pytest.mark.parametrize("body, expected", [
    ("0,1.0,1.1\n1,0.9,1.0\n", []),
    ("0,1.0,1.1\n1,0.9,1.0\n1,0.8,0.9\n", ["lists epochs ['0', '1', '1'], expected 0..1"]),
    ("1,0.9,1.0\n0,1.0,1.1\n", ["lists epochs ['1', '0'], expected 0..1"]),
    ("0,1.0,1.1\n", ["lists epochs ['0'], expected 0..1"]),
    ("0,1.0,1.1\n1,nan,1.0\n", ["epoch 1 has loss='nan'"]),
    ("0,1.0,1.1\n1,0.9,\n", ["epoch 1 has val_loss=''"]),
])
def test_history_problems(tmp_path, body, expected):
    path = tmp_path / "history.csv"
    path.write_text(HEADER + body)
    problems = inspection.history_problems(path, 2)
    assert len(problems) == len(expected)
    assert all(e in p for e, p in zip(expected, problems)), problems


def test_footprint_reports_a_fault_that_did_not_fire(tmp_path):
    result = {"rc": 0, "fault": None, "started": "fresh", "done": 4, "output": "VICTIM done 4"}
    problems = inspection.footprint("cache:3:partial", result, tmp_path, set())
    assert len(problems) == 1 and problems[0].startswith("the fault did not fire as planned: rc 0")


def test_files_matching_lists_temporary_files(tmp_path):
    (tmp_path / "run").mkdir()
    for name in (".tmp-a.h5", ".tmp-history-b.csv", ".tmp-c.json", "mask_rcnn_x_0001.h5"):
        (tmp_path / "run" / name).write_text("x")
    assert [os.path.basename(p) for p in inspection.files_matching(tmp_path / "run", ".tmp-*")] \
        == [".tmp-a.h5", ".tmp-c.json", ".tmp-history-b.csv"]
    assert [os.path.basename(p) for p in inspection.files_matching(
        tmp_path / "run", inspection.TEMP_PATTERNS["checkpoint"])] == [".tmp-a.h5"]

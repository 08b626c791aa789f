"""The fault injector kills where it says, leaving what that write point leaves (fast: no training).

Each kill runs in a child process that installs an `Injector` and calls the
library's own writer (SampleCache.put, save_config, runs.write_history,
mrcnn.weights.save_weights); the parent checks the exit status and the
files against values computed here.
"""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.faults import injection

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KILLED = -signal.SIGKILL


def run_child(code, spec, folder):
    """Run `code` after installing ``Injector(spec, cache_dir=folder/cache)``.

    Returns:
        (exit status, the ``FAULT`` line's JSON or None, stdout + stderr).
    """
    prelude = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {ROOT!r})
        import numpy as np
        from tests.faults.injection import Injector
        FOLDER = {os.fspath(folder)!r}
        injector = Injector({spec!r}, cache_dir=os.path.join(FOLDER, "cache"),
                            partial_arrays=2).install()
    """)
    proc = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    faults = [json.loads(line[len(injection.FAULT_PREFIX):])
              for line in proc.stdout.splitlines() if line.startswith(injection.FAULT_PREFIX)]
    return proc.returncode, (faults[0] if faults else None), proc.stdout + proc.stderr


CACHE_PUTS = """
    from mrcnn.data.cache import SampleCache
    cache = SampleCache(os.path.join(FOLDER, "cache"))
    for i in range(3):
        cache.put(f"key{i}", {"a": np.arange(1000 * (i + 1)), "m": np.eye(8, dtype=bool)})
    print("COUNTS", injector.counts)
"""


def cache_arrays(i):
    return {"a": np.arange(1000 * (i + 1)), "m": np.eye(8, dtype=bool)}


def test_cache_partial_kill_leaves_half_an_entry_that_is_never_read(tmp_path):
    from mrcnn.data.cache import SampleCache, encode_entry

    rc, fault, out = run_child(CACHE_PUTS, "cache:2:partial", tmp_path)
    assert rc == KILLED and fault["fault"] == "cache:2:partial", out
    blob = encode_entry(cache_arrays(1), "key1")[0]
    assert (fault["written"], fault["of"]) == (len(blob) // 2, len(blob))
    with open(fault["path"], "rb") as f:
        assert f.read() == blob[:len(blob) // 2]         # the first half, synced
    assert os.path.basename(fault["path"]).startswith(".key1.")
    cache = SampleCache(tmp_path / "cache")
    assert cache.stats().entries == 1                    # key0 only: the .tmp is no entry
    assert np.array_equal(cache.get("key0")["a"], cache_arrays(0)["a"])
    assert cache.get("key1") is None and cache.get("key2") is None


def test_cache_rename_kill_leaves_the_complete_entry_under_its_temporary_name(tmp_path):
    from mrcnn.data.cache import SampleCache, encode_entry

    rc, fault, out = run_child(CACHE_PUTS, "cache:1:rename", tmp_path)
    assert rc == KILLED and fault["fault"] == "cache:1:rename", out
    assert not os.path.exists(fault["target"])
    with open(fault["path"], "rb") as f:              # read before a SampleCache opens the folder:
        assert f.read() == encode_entry(cache_arrays(0), "key0")[0]
    cache = SampleCache(tmp_path / "cache")           # ... it removes a dead writer's temp file
    assert fault["target"] == cache.path("key0")
    assert not os.path.exists(fault["path"])
    assert cache.get("key0") is None and cache.stats().entries == 0


def test_no_fault_counts_the_writes_and_kills_nothing(tmp_path):
    rc, fault, out = run_child(CACHE_PUTS, None, tmp_path)
    assert rc == 0 and fault is None, out
    assert "COUNTS {'checkpoint': 0, 'cache': 3, 'history': 0, 'config': 0, 'step': 0}" in out


def test_history_partial_kill_keeps_the_old_history(tmp_path):
    code = """
        from mrcnn.training import runs
        path = os.path.join(FOLDER, "history.csv")
        runs.write_history(path, ["epoch", "loss"], [["0", "1.5"]])
        runs.write_history(path, ["epoch", "loss"], [["0", "1.5"], ["1", "1.25"]])
    """
    rc, fault, out = run_child(code, "history:2:partial", tmp_path)
    assert rc == KILLED and fault["fault"] == "history:2:partial", out
    assert (tmp_path / "history.csv").read_text().splitlines() == ["epoch,loss", "0,1.5"]
    assert os.path.basename(fault["path"]).startswith(".tmp-history-")
    assert os.path.getsize(fault["path"]) == fault["written"] > 0


def test_config_rename_kill_leaves_a_complete_temporary_json(tmp_path):
    code = """
        from mrcnn.config import Config, save_config
        class C(Config):
            NAME = "faulty"
            NUM_CLASSES = 2
        save_config(C(), os.path.join(FOLDER, "config.json"))
    """
    rc, fault, out = run_child(code, "config:1:rename", tmp_path)
    assert rc == KILLED and fault["fault"] == "config:1:rename", out
    assert fault["target"] == os.path.join(os.fspath(tmp_path), "config.json")
    assert not os.path.exists(fault["target"])
    with open(fault["path"]) as f:
        assert json.load(f)["NAME"] == "faulty"


CHECKPOINT = """
    import keras
    from mrcnn.weights import save_weights
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="d1"),
                              keras.layers.Dense(2, name="d2")])
    save_weights(model, os.path.join(FOLDER, "mask_rcnn_x_0001.h5"))
    np.save(os.path.join(FOLDER, "kernel.npy"), model.get_layer("d2").get_weights()[0])
    save_weights(model, os.path.join(FOLDER, "mask_rcnn_x_0002.h5"))
"""


@pytest.mark.parametrize("phase", ["partial", "rename"])
def test_checkpoint_kill_leaves_a_temporary_file_the_loader_tells_apart(tmp_path, phase):
    from mrcnn.training import runs
    from mrcnn.weights import WeightsFileError, h5

    rc, fault, out = run_child(CHECKPOINT, f"checkpoint:2:{phase}", tmp_path)
    assert rc == KILLED and fault["fault"] == f"checkpoint:2:{phase}", out
    assert runs.checkpoint_epoch(fault["path"]) is None            # never a checkpoint name
    assert not (tmp_path / "mask_rcnn_x_0002.h5").exists()
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["mask_rcnn_x_0001.h5", "kernel.npy", os.path.basename(fault["path"])])
    if phase == "partial":
        assert fault["arrays_written"] == 2                        # of 4
        with pytest.raises(WeightsFileError, match=re.escape(fault["path"])):
            h5.read_named_weights(fault["path"])
    else:
        groups, _ = h5.read_named_weights(fault["path"])           # complete and verified
        assert np.array_equal(groups["d2"][0][1], np.load(tmp_path / "kernel.npy"))


@pytest.mark.parametrize("text, message", [
    ("disk:1", "KIND one of"), ("cache", "KIND:K"), ("cache:x", "positive integer, got 'x'"),
    ("cache:0", ">= 1, got 0"), ("step:3:rename", "one of ('begin', 'end'), got 'rename'"),
])
def test_a_bad_fault_spec_names_itself_and_the_choices(text, message):
    with pytest.raises(ValueError, match=f"fault spec '{text}'.*" + message.replace("(", r"\(")
                       .replace(")", r"\)")):
        injection.FaultSpec(text)


def test_fault_spec_defaults_to_the_first_phase():
    assert str(injection.FaultSpec("cache:3")) == "cache:3:partial"
    assert str(injection.FaultSpec("step:7")) == "step:7:begin"


@pytest.mark.parametrize("name, kind", [
    (".tmp-abc.h5", "checkpoint"), (".tmp-history-abc.csv", "history"),
    (".tmp-abc.json", "config"), ("mask_rcnn_x_0001.h5", None), ("history.csv", None),
])
def test_classify_names_the_library_temporary_files(tmp_path, name, kind):
    assert injection.classify(os.fspath(tmp_path / "run" / name), tmp_path / "cache") == kind


def test_cache_temporary_files_count_only_inside_the_cache(tmp_path):
    name = ".0123abcd.x1y2.tmp"
    assert injection.classify(os.fspath(tmp_path / "cache" / "v2" / "01" / name),
                              tmp_path / "cache") == "cache"
    assert injection.classify(os.fspath(tmp_path / "elsewhere" / name), tmp_path / "cache") is None

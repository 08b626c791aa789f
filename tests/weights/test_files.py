"""Weight files on disk: local search, offline errors, downloads, checks, weights/download.py."""

import hashlib
import importlib.util
import os
import time

import numpy as np
import pytest

from mrcnn.weights import catalog, files
from tests.weights.weight_helpers import write_keras2_h5

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---------------------------------------------------------- local search
def test_search_order_env_dirs_then_keras_cache_then_cwd(offline, tmp_path, monkeypatch):
    second = tmp_path / "second"
    second.mkdir()
    monkeypatch.setenv(files.WEIGHTS_DIR_ENV,
                       os.pathsep.join([str(offline["weights_dir"]), str(second)]))
    name = "mask_rcnn_coco.h5"
    places = [offline["weights_dir"] / name, second / name,
              offline["keras_home"] / "models" / name, offline["cwd"] / name]
    (offline["keras_home"] / "models").mkdir()
    assert files.find_weights("coco") is None
    for p in places:
        p.write_bytes(b"x")
    for p in places:
        assert files.find_weights("coco") == str(p)
        p.unlink()
    assert files.find_weights("coco") is None


def test_locate_accepts_an_entry(offline):
    entry = {**catalog.get_entry("coco"), "name": "mine", "file": "mine.h5", "url": None}
    with pytest.raises(FileNotFoundError, match="no file mine.h5") as info:
        files.locate_weights(entry, allow_download=True)
    assert "no url is known for 'mine'" in str(info.value)
    (offline["weights_dir"] / "mine.h5").write_bytes(b"x")   # not the size of the entry
    assert files.locate_weights(entry, verify=False) == str(offline["weights_dir"] / "mine.h5")


# ------------------------------------------------------- offline behaviour
def test_download_through_unreachable_proxy_fails_fast_and_leaves_nothing(offline):
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as info:
        files.locate_weights("imagenet-efficientnetv2-b0", allow_download=True, verbose=0)
    assert time.perf_counter() - start < 10
    msg = str(info.value)
    assert "efficientnetv2-b0_notop.h5" in msg and "failed" in msg
    # the proxy was used (connection refused), not a direct lookup of the host
    assert "network disabled" not in msg and "refused" in msg.lower(), msg
    assert os.listdir(offline["weights_dir"]) == []

    start = time.perf_counter()
    target = offline["cwd"] / "mask_rcnn_coco.h5"
    with pytest.raises(OSError, match="mask_rcnn_coco.h5"):
        files.download_trained_weights(str(target), verbose=0)
    assert time.perf_counter() - start < 10
    assert os.listdir(offline["cwd"]) == []


# ---------------------------------------------------------------- download
def fake_manifest(monkeypatch, **entry):
    base = {"name": "test-file", "file": "test.h5", "description": "test file",
            "kind": "backbone", "backbone": "small-cnn", "layout": "matterport",
            "url": "https://example.invalid/test.h5", "size": None, "md5": None,
            "sha256": None, "verify": "md5", "weighted_layers": None, "notes": ""}
    base.update(entry)
    monkeypatch.setattr(catalog, "manifest", lambda: {"files": [base]})
    return base


def test_download_writes_atomically_and_checks_md5(tmp_path, monkeypatch):
    source = tmp_path / "source.h5"
    write_keras2_h5(source, [("conv", [("conv/kernel:0", np.arange(6.0).reshape(2, 3))]),
                             ("relu", [])])
    data = source.read_bytes()
    md5 = hashlib.md5(data).hexdigest()
    out = tmp_path / "out"
    fake_manifest(monkeypatch, md5=md5, weighted_layers=1)
    path = files.download_weights("test-file", directory=str(out), url=source.as_uri(),
                                  verbose=0)
    assert path == str(out / "test.h5") and (out / "test.h5").read_bytes() == data
    assert os.listdir(out) == ["test.h5"]
    check = files.verify_file(path, "test-file")
    assert check["ok"] and check["md5"] == md5 and check["size"] == len(data)
    assert check["sha256"] == hashlib.sha256(data).hexdigest() and not check["warnings"]

    fake_manifest(monkeypatch, md5="0" * 32, weighted_layers=3)
    check = files.verify_file(path, "test-file")
    assert not check["ok"] and md5 in check["problems"][0]
    assert check["warnings"] == ["1 layers hold weights, the manifest expects 3"]
    (out / "test.h5").unlink()
    with pytest.raises(ValueError, match="does not match .*deleted"):
        files.download_weights("test-file", directory=str(out), url=source.as_uri(),
                               verbose=0)
    assert os.listdir(out) == []

    fake_manifest(monkeypatch, verify="size", size=len(data) + 1)
    with pytest.raises(ValueError, match=f"{len(data):,} bytes, expected {len(data) + 1:,}"):
        files.download_weights("test-file", directory=str(out), url=source.as_uri(),
                               verbose=0)
    assert os.listdir(out) == []


def test_verify_reports_a_file_that_is_not_hdf5(tmp_path):
    path = tmp_path / "mask_rcnn_coco.h5"
    path.write_bytes(b"not the real file")
    check = files.verify_file(str(path), "coco")
    assert not check["ok"]
    assert check["problems"][0] == "17 bytes, expected 257,557,808"
    assert check["problems"][1].startswith("not a readable HDF5 file")


def load_script():
    spec = importlib.util.spec_from_file_location(
        "weights_download", os.path.join(REPO, "weights", "download.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_download_script_list_and_verify(offline, capsys):
    script = load_script()
    assert script.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "imagenet-efficientnetv2-l" in out and "mask_rcnn_coco.h5" in out
    assert script.expand_names(["imagenet", "coco"])[-1] == "coco"
    assert len(script.expand_names(["all"])) == len(catalog.manifest()["files"])
    (offline["weights_dir"] / "mask_rcnn_coco.h5").write_bytes(b"not the real file")
    assert script.main(["coco", "--verify"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: 17 bytes, expected 257,557,808" in out
    assert script.main(["imagenet-resnet50", "--verify"]) == 1
    assert "missing" in capsys.readouterr().out


# ------------------------------------------------ local files found by name are checked
def test_a_local_file_found_by_name_is_checked_before_loading(offline, tmp_path):
    """An 8 MB file called mask_rcnn_coco.h5 is not Matterport's 257,557,808-byte COCO model."""
    from mrcnn.weights import h5, load_weights
    from tests.weights.weight_helpers import tiny_model
    coco_model = tiny_model(tmp_path, NUM_CLASSES=81)
    path = h5.save_weights(coco_model.keras_model,
                           str(offline["weights_dir"] / "mask_rcnn_coco.h5"))
    assert os.path.getsize(path) < 8 * 2 ** 20
    with open(path, "ab") as f:                      # pad it to 8 MB; still a valid HDF5 file
        f.truncate(8 * 2 ** 20)
    model = tiny_model(tmp_path, NUM_CLASSES=4)
    with pytest.raises(ValueError) as err:
        load_weights(model.keras_model, "coco", backbone=model.backbone, exclude="heads")
    msg = str(err.value)
    for part in (path, "'coco'", f"found {8 * 2 ** 20:,} bytes, expected 257,557,808",
                 "verify=False",
                 "python weights/download.py coco"):
        assert part in msg, (part, msg)
    with pytest.raises(ValueError, match="257,557,808"):
        files.locate_weights("coco")
    # the documented override loads it
    report = load_weights(model.keras_model, "coco", backbone=model.backbone, exclude="heads",
                          verify=False)
    assert report["path"] == path and report["loaded"]
    assert files.locate_weights("coco", verify=False) == path


def test_local_checks_hash_a_file_once_per_state(offline, monkeypatch):
    path = offline["weights_dir"] / "test.h5"
    write_keras2_h5(path, [("conv", [("conv/kernel:0", np.arange(6.0).reshape(2, 3))])])
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    entry = {**catalog.get_entry("coco"), "name": "test-file", "file": "test.h5",
             "md5": md5, "verify": "md5", "size": None, "weighted_layers": None}
    calls = []
    real = files.file_digests
    monkeypatch.setattr(files, "file_digests", lambda p, *a: calls.append(p) or real(p, *a))
    for _ in range(3):
        assert files.locate_weights(entry) == str(path)
    assert len(calls) == 1
    # the same size, other bytes, a new mtime: hashed again, and refused
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10 ** 9))
    with pytest.raises(ValueError, match=f"md5 [0-9a-f]{{32}}, expected {md5}"):
        files.locate_weights(entry)
    assert len(calls) == 2


def test_a_sha256_recorded_for_a_file_is_checked(offline):
    path = offline["weights_dir"] / "test.h5"
    write_keras2_h5(path, [("conv", [("conv/kernel:0", np.ones((2, 2)))])])
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    size = os.path.getsize(path)
    entry = {**catalog.get_entry("coco"), "name": "test-file", "file": "test.h5",
             "size": size}
    assert files.locate_weights(entry) == str(path)                 # size only: passes
    assert files.locate_weights({**entry, "sha256": sha}) == str(path)
    with pytest.raises(ValueError, match=f"sha256 {sha}, expected {'ab' * 32}"):
        files.locate_weights({**entry, "sha256": "ab" * 32})


def test_record_sha256_pins_a_manifest_entry(offline, tmp_path):
    (offline["weights_dir"] / "mask_rcnn_coco.h5").write_bytes(b"x")
    try:
        catalog.record_sha256("coco", "cd" * 32)
        assert catalog.get_entry("coco")["sha256"] == "cd" * 32
        with pytest.raises(ValueError, match=f"expected {'cd' * 32}"):
            files.locate_weights("coco")
        with pytest.raises(ValueError, match="64 lower-case hex digits.*'xyz'"):
            catalog.record_sha256("coco", "xyz")
        with pytest.raises(ValueError, match="no weights called 'cocoa'"):
            catalog.record_sha256("cocoa", "cd" * 32)
    finally:
        catalog.record_sha256("coco", None)
    assert catalog.get_entry("coco")["sha256"] is None


def test_download_script_checks_a_file_already_present(offline, capsys):
    script = load_script()
    (offline["weights_dir"] / "mask_rcnn_coco.h5").write_bytes(b"not the real file")
    assert script.main(["coco"]) == 1                 # not downloaded over, not taken as done
    err = capsys.readouterr().err
    assert "does not match the manifest (17 bytes, expected 257,557,808;" in err
    assert "--force" in err
    assert (offline["weights_dir"] / "mask_rcnn_coco.h5").read_bytes() == b"not the real file"

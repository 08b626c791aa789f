"""Offline / Kaggle-kernel use: a wheel installed with --no-index, and a read-only source tree."""

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tree_state(folder):
    """{relative path: (size, mtime_ns, sha1)} of every file, plus the folder list."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        rel = os.path.relpath(dirpath, folder)
        state[rel + "/"] = sorted(dirnames)
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.stat(path)
            with open(path, "rb") as f:
                digest = hashlib.sha1(f.read()).hexdigest()
            state[os.path.join(rel, name)] = (st.st_size, st.st_mtime_ns, digest)
    return state


@pytest.mark.slow
def test_wheel_installs_offline_and_detects(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(dist)], check=True)
    wheels = list(dist.glob("mrcnn_keras3-*.whl"))
    assert len(wheels) == 1, wheels
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert any(n.startswith("mrcnn/model.py") for n in names)
    assert any(n.startswith("backbones/registry.py") for n in names)
    assert not [n for n in names if n.startswith(("tests/", "notebooks/", "weights/", "samples/"))
                or n.endswith(".h5")], names
    assert wheels[0].name.endswith("-py3-none-any.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9")
    # This machine has the project installed in editable mode, which pip in a
    # --system-site-packages venv would take as "already satisfied": force the
    # wheel in, then check its declared dependencies are all present, as on Kaggle.
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(dist),
                    "--force-reinstall", "--no-deps", "mrcnn-keras3"], check=True, env=env)
    check = ("import importlib.metadata as m, re\n"
             "missing = [r for r in m.requires('mrcnn-keras3') if 'extra ==' not in r\n"
             "           and not m.distributions(name=re.split('[<>=; ]', r)[0])]\n"
             "print('MISSING', missing)\n")
    proc = subprocess.run([py, "-c", check], capture_output=True, text=True, env=env)
    assert "MISSING []" in proc.stdout, proc.stdout + proc.stderr
    code = (
        "import sys, os, numpy as np\n"
        "sys.path = [p for p in sys.path if os.path.abspath(p) != %r]\n"
        "sys.meta_path = [f for f in sys.meta_path\n"
        "                 if '__editable__' not in getattr(f, '__module__', '')]\n"
        "import mrcnn, mrcnn.model as modellib\n"
        "from mrcnn.config import Config\n"
        "assert mrcnn.__file__.startswith(%r), mrcnn.__file__\n"
        "class C(Config):\n"
        "    NAME='w'; NUM_CLASSES=2; IMAGES_PER_GPU=1; IMAGE_MIN_DIM=64; IMAGE_MAX_DIM=64\n"
        "    BACKBONE='small-cnn'; TOP_DOWN_PYRAMID_SIZE=32; FPN_CLASSIF_FC_LAYERS_SIZE=32\n"
        "    PRE_NMS_LIMIT=200; POST_NMS_ROIS_INFERENCE=30; DETECTION_MAX_INSTANCES=5\n"
        "    POST_NMS_ROIS_TRAINING=100; TRAIN_ROIS_PER_IMAGE=50\n"
        "    DETECTION_MIN_CONFIDENCE=0.0; RPN_ANCHOR_SCALES=(8,16,32,64,128)\n"
        "m = modellib.MaskRCNN('inference', C(), %r)\n"
        "r = m.detect([np.zeros((50, 60, 3), np.uint8)])[0]\n"
        "assert r['masks'].shape[:2] == (50, 60)\n"
        "print('WHEEL_OK', r['rois'].shape)\n"
    ) % (ROOT, str(venv), str(tmp_path / "logs"))
    proc = subprocess.run([py, "-c", code], capture_output=True, text=True, env=env,
                          cwd=str(tmp_path))
    assert "WHEEL_OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]


READONLY_SCRIPT = r'''
import os, sys
src, data, out = sys.argv[1:4]
sys.meta_path = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
sys.path.insert(0, src)
import numpy as np
import mrcnn
assert mrcnn.__file__.startswith(src), mrcnn.__file__
from mrcnn.config import Config
from mrcnn.datasets import SartoriusDataset
import mrcnn.model as modellib

class C(Config):
    NAME = "ro"; NUM_CLASSES = 4; IMAGES_PER_GPU = 1; BACKBONE = "small-cnn"
    IMAGE_RESIZE_MODE = "none"; IMAGE_SHAPE = [128, 192, 3]
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128); TOP_DOWN_PYRAMID_SIZE = 32
    FPN_CLASSIF_FC_LAYERS_SIZE = 32; MASK_HEAD_CHANNELS = 32; PRE_NMS_LIMIT = 300
    POST_NMS_ROIS_TRAINING = 100; POST_NMS_ROIS_INFERENCE = 50; TRAIN_ROIS_PER_IMAGE = 32
    MAX_GT_INSTANCES = 64; DETECTION_MAX_INSTANCES = 10; DETECTION_MIN_CONFIDENCE = 0.0
    STEPS_PER_EPOCH = 1; VALIDATION_STEPS = 0; MINI_MASK_SHAPE = (28, 28)
    CACHE = "disk"; CACHE_DIR = os.path.join(out, "cache")

ds = SartoriusDataset(); ds.load_sartorius(data); ds.prepare()
model = modellib.MaskRCNN("training", C(), os.path.join(out, "logs"))
model.train(ds, None, 0.01, epochs=1, layers="all", verbose=0)
infer = modellib.MaskRCNN("inference", C(), os.path.join(out, "logs"))
infer.load_weights(model.find_last())
r = infer.detect([ds.load_image(0)])[0]
print("READONLY_OK", model.find_last(), r["masks"].shape)
'''


@pytest.mark.slow
def test_read_only_source_and_data(tmp_path):
    from mrcnn.datasets.synthetic_cells import write_synthetic_sartorius
    src, data, out = tmp_path / "src", tmp_path / "data", tmp_path / "out"
    for package in ("mrcnn", "backbones"):
        shutil.copytree(os.path.join(ROOT, package), src / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    write_synthetic_sartorius(str(data), n_images=2, seed=1, height=128, width=192)
    out.mkdir()
    before = (tree_state(src), tree_state(data))
    subprocess.run(["chmod", "-R", "a-w", str(src), str(data)], check=True)
    # As root, chmod does not stop writes; Python's own bytecode cache is kept out
    # as a read-only mount would (it skips __pycache__ silently there), and the
    # tree comparison below catches anything the library itself writes.
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", KERAS_BACKEND="tensorflow")
    try:
        proc = subprocess.run([sys.executable, "-c", READONLY_SCRIPT, str(src), str(data),
                               str(out)], capture_output=True, text=True, env=env,
                              cwd=str(out), timeout=900)
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(src), str(data)], check=True)
    assert "READONLY_OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (tree_state(src), tree_state(data)) == before
    ckpt = proc.stdout.split("READONLY_OK ")[1].split()[0]
    assert ckpt.startswith(str(out / "logs")) and os.path.exists(ckpt)
    cache_files = [f for _, _, fs in os.walk(out / "cache") for f in fs]
    assert cache_files, "the disk cache was not written where it was told to go"


def test_unwritable_model_dir_fails_before_training(tmp_path, monkeypatch):
    import mrcnn.model as modellib
    from mrcnn.training import callbacks
    from model_helpers import make_config, shapes

    def refuse(folder):
        raise PermissionError(f"cannot write to the output folder {folder!r} (read-only)")
    model = modellib.MaskRCNN("training", make_config(), str(tmp_path / "ro"))
    monkeypatch.setattr(callbacks, "check_writable", refuse)
    with pytest.raises(PermissionError, match="output folder"):
        model.train(shapes(2), None, 0.01, epochs=1, layers="heads", verbose=0)
    assert not [f for _, _, fs in os.walk(tmp_path / "ro") for f in fs if f.endswith(".h5")]

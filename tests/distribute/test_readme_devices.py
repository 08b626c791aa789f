"""README "Several GPUs and several machines": `samples/cell/train.py --devices N`.

The first command of the README block runs as written (plus small sizes) in
a subprocess: without GPUs it splits the CPU into 2 virtual devices, which
must happen before the backend starts. The Kaggle command needs the Kaggle
data and two GPUs: tests/test_documented_commands.py parses it.
"""

import os
import re
import shlex
import subprocess
import sys

import keras
import pytest
from helpers import load_sample_script, without_device_count

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = ["--epochs", "1", "--steps-per-epoch", "2", "--validation-steps", "1",
         "--synthetic-images", "6", "--folds", "3", "--crop-size", "128"]


def readme_commands():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert "<!-- readme-devices -->" in text, "README.md lost <!-- readme-devices -->"
    block = re.search(r"<!-- readme-devices -->\n```bash\n(.*?)```", text, re.S).group(1)
    return [shlex.split(line) for line in block.replace("\\\n", " ").splitlines() if line]


def test_readme_block_has_the_one_machine_and_the_kaggle_commands():
    commands = readme_commands()
    assert commands[0] == ["python3", "samples/cell/train.py", "--devices", "2"]
    kaggle = commands[1]
    assert kaggle[:2] == ["python3", "samples/cell/train.py"] and "/kaggle/input" in kaggle[3]
    assert kaggle[kaggle.index("--devices") + 1] == "2" and "--mixed-precision" in kaggle


def test_devices_flag_sets_gpu_count_for_training_only():
    train = load_sample_script("train")
    args = train.build_parser().parse_args(["--devices", "3"])
    config, infer_config = train.make_config(args, ["BG", "astro", "cort", "shsy5y"])
    assert (config.GPU_COUNT, config.IMAGES_PER_GPU, config.BATCH_SIZE) == (3, 2, 6)
    assert (infer_config.GPU_COUNT, infer_config.BATCH_SIZE) == (1, 1)
    default, _ = train.make_config(train.build_parser().parse_args([]), ["BG", "cell"])
    assert default.GPU_COUNT == 1


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() == "torch",
                    reason="PyTorch trains on one device (test_strategy checks its error)")
def test_readme_devices_command_runs_as_written(tmp_path):
    argv = readme_commands()[0]
    env = dict(os.environ, MRCNN_CACHE_DIR=str(tmp_path / "cache"), TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    without_device_count(env)
    proc = subprocess.run([sys.executable] + argv[1:] + SMALL +
                          ["--model-dir", str(tmp_path / "logs")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-5000:]
    assert "Devices: data-parallel over 2 devices (" in out and "2 x 2 images per step" in out
    if "GPU" not in out.split("Devices:")[1].splitlines()[0]:
        assert "the CPU is split into 2 virtual" in out
    assert re.search(r"validation mAP-IoU=\d\.\d{4} \(untrained model: \d\.\d{4}\)", out), out
    run = os.listdir(tmp_path / "logs")[0]
    assert "mask_rcnn_cell_0001.h5" in os.listdir(tmp_path / "logs" / run)

"""README "Several machines": each command runs as written, two processes on localhost, small sizes.

The block's machine addresses become free local ports, ``--devices 8`` (two
machines of four GPUs) becomes ``--devices 2`` (two processes of one CPU
device), machine 1 runs the same command with the change its comment names,
and the cell sample gets small-size flags. Slow: each is a two-process run of
samples/cell/train.py (minutes on 2 CPU cores).
"""

import os
import re
import shlex
import subprocess
import sys

import keras
import pytest

from mrcnn.distribute import cluster
from mrcnn.launch import free_ports

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = ["--epochs", "1", "--steps-per-epoch", "1", "--validation-steps", "1",
         "--synthetic-images", "6", "--folds", "3", "--crop-size", "64", "--scale", "0.25",
         "--max-gt-instances", "16", "--detection-max-instances", "16"]


def documented_commands():
    """``(comment, env, argv)`` of each command in the README block, in order."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    block = re.search(r"<!-- readme-several-machines -->\n```bash\n(.*?)```", text, re.S).group(1)
    commands, comment = [], ""
    for line in block.replace("\\\n", " ").splitlines():
        if line.startswith("#"):
            comment = line
            continue
        words = shlex.split(line)
        env = dict(w.split("=", 1) for w in words if re.fullmatch(r"[A-Z_]+=.*", w))
        commands.append((comment, env, [w for w in words if not re.fullmatch(r"[A-Z_]+=.*", w)]))
    return commands


COMMANDS = documented_commands()


@pytest.mark.backend_independent
def test_the_block_has_the_three_commands():
    assert [c[0].split(":")[0] for c in COMMANDS] == ["# JAX", "# TensorFlow",
                                                      "# one machine standing in for two"]
    assert COMMANDS[0][1][cluster.ENV_PROCESS_ID] == "0"
    assert "KERAS_DISTRIBUTION_PROCESS_ID=1 on machine 1" in COMMANDS[0][0]
    assert '"index": 0' in COMMANDS[1][1][cluster.ENV_TF_CONFIG]
    assert '"index": 1 on machine 1' in COMMANDS[1][0]


def small(argv, model_dir):
    argv = ["2" if w == "8" and argv[i - 1] == "--devices" else w for i, w in enumerate(argv)]
    return [sys.executable if w == "python3" else w for w in argv] + SMALL + [
        "--model-dir", str(model_dir)]


def base_environment(tmp_path):
    from mrcnn.datasets.synthetic_cells import ensure_synthetic_sartorius

    ensure_synthetic_sartorius(str(tmp_path / "cache" / "synthetic_sartorius"), n_images=6, seed=0)
    env = dict(os.environ, MRCNN_CACHE_DIR=str(tmp_path / "cache"), TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    for name in (cluster.ENV_ADDRESSES, cluster.ENV_NUM_PROCESSES, cluster.ENV_PROCESS_ID,
                 cluster.ENV_TF_CONFIG, cluster.ENV_RUN_STAMP):
        env.pop(name, None)
    return env


def check_one_run(model_dir, outputs):
    """One run folder with the checkpoint; the chief alone reports the evaluation."""
    runs = os.listdir(model_dir)
    assert len(runs) == 1 and runs[0].startswith("cell"), runs
    assert "mask_rcnn_cell_0001.h5" in os.listdir(os.path.join(model_dir, runs[0]))
    assert "validation mAP-IoU=" in outputs[0]
    assert all("validation mAP-IoU=" not in out for out in outputs[1:])


@pytest.mark.slow
@pytest.mark.parametrize("which", [0, 1], ids=["jax", "tensorflow"])
def test_machine_commands_run_as_written(tmp_path, which):
    comment, env, argv = COMMANDS[which]
    ports = free_ports(2)
    machines = []
    for index in (0, 1):
        machine = {}
        for name, value in env.items():
            value = value.replace("10.0.0.1:12345", f"127.0.0.1:{ports[0]}")
            value = value.replace("10.0.0.2:12345", f"127.0.0.1:{ports[1]}")
            if index == 1:                       # what the comment says machine 1 changes
                value = value.replace('"index": 0', '"index": 1')
                if name == cluster.ENV_PROCESS_ID:
                    value = "1"
            machine[name] = value
        machines.append(machine)
    model_dir = tmp_path / "logs"
    base = base_environment(tmp_path)
    procs = [subprocess.Popen(small(argv, model_dir), cwd=ROOT, env={**base, **m}, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for m in machines]
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=1500)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-6000:]
    check_one_run(model_dir, outputs)


@pytest.mark.slow
def test_launcher_command_runs_as_written(tmp_path):
    if keras.backend.backend() not in ("jax", "tensorflow"):
        pytest.skip("several processes train on JAX or TensorFlow only")
    _, env, argv = COMMANDS[2]
    assert env == {}
    model_dir = tmp_path / "logs"
    done = subprocess.run(small(argv, model_dir), cwd=ROOT, env=base_environment(tmp_path),
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    lines = done.stdout.splitlines()
    check_one_run(model_dir, ["\n".join(l for l in lines if l.startswith(f"[{i}] "))
                              for i in (0, 1)])

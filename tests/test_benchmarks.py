"""benchmarks/train_detect.py and train_profile.py at tiny sizes: they run, and print what
RESULTS.md quotes (the last line of train_detect, the profile's parts)."""

import os
import re
import subprocess
import sys

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
TINY = ["--backbone", "small-cnn", "--size", "64", "--steps", "1", "--fc", "32"]


def run(script, *args):
    proc = subprocess.run([sys.executable, os.path.join(BENCH, script), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=900,
                          env=dict(os.environ, KERAS_BACKEND="tensorflow"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


FAKE_PEER = """
import argparse, json, sys, time
sys.path.insert(0, {bench!r})
from interleave import timed_calls
p = argparse.ArgumentParser()
p.add_argument("script"); p.add_argument("--size"); p.add_argument("--steps", type=int)
p.add_argument("--precision"); p.add_argument("--phase"); p.add_argument("--serve", action="store_true")
a = p.parse_args()
assert a.script.endswith("peer_torchvision.py") and a.serve and a.precision == "float32", a
times = timed_calls(lambda: time.sleep(0.2), a.steps, a.serve)
key = "train_step_s" if a.phase == "train" else "detect_s"
result = {{key: sorted(times)[len(times) // 2], a.phase + "_rss_mib": 1.0}}
if a.phase == "detect":
    result["detections"] = 100
print(json.dumps(result))
"""


@pytest.mark.slow
def test_train_detect_prints_both_phases_and_the_last_line(tmp_path):
    """Ours against a stand-in peer (the peer's protocol, 0.2 s a call; torchvision is not a
    dependency), two rounds in turns: the table, each round's ratio, the last line."""
    fake = tmp_path / "peer.py"
    fake.write_text(FAKE_PEER.format(bench=BENCH))
    shim = tmp_path / "python"   # what --peer-python names: runs the stand-in
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} {fake} \"$@\"\n")
    shim.chmod(0o755)
    out = run("train_detect.py", *TINY, "--precision", "float32", "--rounds", "2",
              "--peer-python", str(shim))
    assert "precision=float32 (asked: float32)" in out and "rounds=2x1" in out
    for label in ("train step (s)", "detect (s)", "train peak RSS (MiB)",
                  "detect peak RSS (MiB)"):
        value = float(re.search(re.escape(label) + r"\s+([0-9.]+)", out).group(1))
        assert value > 0, label
    ours_detect = float(re.search(r"detect \(s\)\s+([0-9.]+)", out).group(1))
    for phase in ("train", "detect"):
        line = re.search(phase + r" ratio per round\s+([0-9. ]+?)\s+median ([0-9.]+)", out)
        ratios = [float(v) for v in line.group(1).split()]
        assert len(ratios) == 2 and float(line.group(2)) == pytest.approx(
            sum(ratios) / 2, abs=0.01), out
    # the peer's 0.2 s over ours: the detect ratios are of that size (each round's own)
    assert ratios == pytest.approx([0.2 / ours_detect] * 2, rel=0.6), out
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(r"train_step_s=[0-9.]+ detect_s=[0-9.]+ peer_train_step_s=0\.2\d\d "
                        r"peer_detect_s=0\.2\d\d fit_step_s=[0-9.]+", last), last
    assert float(re.search(r"model\.train step \(s\)\s+([0-9.]+)", out).group(1)) > 0
    assert re.search(r"^detections\s+\d+\s+100$", out, re.MULTILINE), out
    # by default the mask head runs on the batch's positives only (TensorFlow)
    rows = int(re.search(r"^mask head rows\s+(\d+)$", out, re.MULTILINE).group(1))
    assert 1 <= rows < 128, out


@pytest.mark.slow
def test_train_detect_padded_mask_head_runs_every_positive_row():
    """--padded-mask-head: the mask head on all int(512 * 0.25) rows, as on JAX (the JAX/TF
    comparison of the same graph in jax_vs_tf.py); the default is in the test above."""
    import json
    out = run("train_detect.py", *TINY, "--precision", "float32", "--phase", "train",
              "--padded-mask-head")
    assert json.loads(out.strip().splitlines()[-1])["mask_rows"] == 128, out


@pytest.mark.slow
def test_mask_targets_benchmark_prints_its_table_and_last_line():
    """benchmarks/mask_targets.py on one image per cell type: full-mask targets score at
    least as well as Matterport's mini-mask rule, the image-position rule in between."""
    out = run("mask_targets.py", "--images", "1")
    last = out.strip().splitlines()[-1]
    match = re.fullmatch(r"full_iou=([0-9.]+) matterport56_iou=([0-9.]+) mini56_iou=([0-9.]+) "
                         r"mini112_iou=([0-9.]+)", last)
    assert match, last
    full, matterport, mini56, mini112 = (float(v) for v in match.groups())
    assert 0.5 < matterport < mini56 <= full <= 1.0 and mini112 <= 1.0, last
    assert re.search(r"^all\s+\d+\s+\d+(\s+0\.\d+){9}$", out, re.MULTILINE), out


@pytest.mark.slow
def test_mask_buckets_benchmark_times_both_variants_on_jax():
    """benchmarks/mask_buckets.py: the same detections bucketed and on all rows, the bucket
    the smallest that holds them; refused on another backend."""
    cmd = [sys.executable, os.path.join(BENCH, "mask_buckets.py"), "--backbone", "small-cnn",
           "--size", "64", "--fc", "32", "--shifts=10,-1000", "--calls", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env=dict(os.environ, KERAS_BACKEND="jax"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    buckets = [int(v) for v in re.search(r"buckets=\[([0-9, ]+)\]", proc.stdout).group(1)
               .split(",")]
    assert buckets == [13, 25, 50, 100]
    lines = re.findall(r"^shift=(\S+) detections=(\d+) bucketed_s=([0-9.]+) "
                       r"all_rows_s=([0-9.]+)$", proc.stdout, re.MULTILINE)
    assert [shift for shift, *_ in lines] == ["10", "-1000"], proc.stdout
    assert int(lines[1][1]) == 0                       # no object wins: no detections
    for shift, n, bucketed, full in lines:
        assert float(bucketed) > 0 and float(full) > 0
        k = next(b for b in buckets if b >= int(n))
        assert re.search(rf"^\s+{float(shift):.1f}\s+{n}\s+{k}\s", proc.stdout, re.MULTILINE)
    if keras.backend.backend() != "jax":     # refused before any model is built
        sys.path.insert(0, BENCH)
        try:
            import mask_buckets
        finally:
            sys.path.remove(BENCH)
        with pytest.raises(SystemExit, match="KERAS_BACKEND=jax"):
            mask_buckets.main(["--size", "64"])


def test_train_detect_refuses_a_peer_on_non_square_images():
    proc = subprocess.run([sys.executable, os.path.join(BENCH, "train_detect.py"),
                           "--size", "64,128", "--peer-python", sys.executable],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode != 0 and "square images only" in proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the TensorFlow profiler")
def test_train_profile_assigns_the_op_time_to_the_parts():
    out = run("train_profile.py", *TINY, "--size", "128,64")
    rows = dict(re.findall(r"^(backbone|FPN|RPN head|box head|mask head|optimizer update)"
                           r"\s+[0-9.]+\s+[0-9.]+\s+([0-9.]+)", out, re.MULTILINE))
    assert set(rows) == {"backbone", "FPN", "RPN head", "box head", "mask head",
                         "optimizer update"}, out
    assert all(float(v) > 0 for v in rows.values()), rows
    total = float(re.search(r"^sum\s+([0-9.]+)", out, re.MULTILINE).group(1))
    shares = [float(v) for v in re.findall(r"([0-9.]+)%$", out, re.MULTILINE)[:-1]]
    assert abs(sum(shares) - 100) < 1.0 and total > 0, out


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the TensorFlow profiler")
def test_train_profile_detect_mode_profiles_inference_only():
    out = run("train_profile.py", *TINY, "--size", "128,64", "--detect")
    assert "\ndetect: backbone=small-cnn" in out, out
    rows = {part: (float(fwd), float(bwd)) for part, fwd, bwd in re.findall(
        r"^(backbone|FPN|RPN head|ROIAlign|box head|mask head|detection layer|"
        r"optimizer update)\s+([0-9.]+)\s+([0-9.]+)\s+[0-9.]+", out, re.MULTILINE)}
    assert {"backbone", "FPN", "RPN head", "ROIAlign", "box head", "mask head"} <= set(rows), out
    assert "optimizer update" not in rows                      # no training step ran
    assert all(fwd > 0 and bwd == 0 for part, (fwd, bwd) in rows.items()
               if part != "detection layer"), rows

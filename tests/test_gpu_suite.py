"""benchmarks/gpu_suite.py in --smoke mode: one case end to end, the table, the JSON."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITE = os.path.join(ROOT, "benchmarks", "gpu_suite.py")


@pytest.mark.slow
def test_smoke_detect_case_prints_its_row(tmp_path):
    out = tmp_path / "suite.json"
    proc = subprocess.run(
        [sys.executable, SUITE, "--smoke", "--cases", "detect-r50-f32,peer-r50-f32",
         "--json", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [l for l in proc.stdout.splitlines() if l.startswith("detect-r50-f32 ")]
    assert rows and "128x192" in rows[-1] and "float32" in rows[-1], proc.stdout
    saved = json.loads(out.read_text())
    ours = saved["results"]["detect-r50-f32"]
    assert 1 <= ours["detections"] <= 100     # DETECTION_MAX_INSTANCES 100
    assert 0 < ours["detect_s"] < ours["compile_s"] + 60
    assert ours["peak_bytes"] > 100 * 2 ** 20  # a ResNet50 in float32 is > 100 MiB
    peer = saved["results"]["peer-r50-f32"]
    assert ("error" in peer and "torchvision" in peer["error"]) or peer["detect_s"] > 0


def test_unknown_case_is_a_clear_error():
    proc = subprocess.run([sys.executable, SUITE, "--cases", "b0-fp8"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert "unknown case(s) ['b0-fp8']" in proc.stderr and "b0-bf16" in proc.stderr


def test_shell_wrapper_without_keras_or_wheels_says_what_to_do(tmp_path):
    env = dict(os.environ, WHEELS=str(tmp_path / "none"), PYTHONPATH="")
    # A Python without keras: the wrapper must refuse with its message, not a traceback.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python3").write_text("#!/bin/sh\nexit 1\n")
    (fake / "python3").chmod(0o755)
    env["PATH"] = f"{fake}:{env['PATH']}"
    proc = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu_suite.sh")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert "no wheels in" in proc.stderr and "none" in proc.stderr

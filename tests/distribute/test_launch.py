"""python -m mrcnn.launch: processes of one job, their environment, output, exit codes, stopping.

The scripts here are plain Python (``--no-init``: they do not join a backend
cluster), so these tests cost process start-ups, not training.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from mrcnn import launch
from mrcnn.distribute import cluster

# Backend-independent: plain Python processes (--no-init); nothing runs on a backend.
pytestmark = pytest.mark.backend_independent

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def run_launcher(args, timeout=120, **kwargs):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "mrcnn.launch", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT, **kwargs)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:                                   # a zombie (not yet reaped) is not running
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


ENV_DUMP = """
    import json, os, sys
    names = ["KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
             "KERAS_DISTRIBUTION_PROCESS_ID", "TF_CONFIG", "MRCNN_RUN_STAMP"]
    print(json.dumps({"env": {n: os.environ.get(n) for n in names}, "argv": sys.argv,
                      "main": __name__}))
    print("to stderr", file=sys.stderr)
"""


def test_processes_get_the_job_environment_and_prefixed_lines(tmp_path):
    path = script(tmp_path, "dump.py", ENV_DUMP)
    done = run_launcher(["--no-init", "--processes", "2", path, "--flag", "a b"])
    assert done.returncode == 0, done.stderr
    seen = {}
    for line in done.stdout.splitlines():
        prefix, _, text = line.partition(" ")
        if text.startswith("{"):
            seen[prefix] = json.loads(text)
    assert sorted(seen) == ["[0]", "[1]"]
    assert sorted(l for l in done.stderr.splitlines() if "to stderr" in l) == [
        "[0] to stderr", "[1] to stderr"]
    envs = [seen[f"[{i}]"]["env"] for i in range(2)]
    assert [e[cluster.ENV_PROCESS_ID] for e in envs] == ["0", "1"]
    assert {e[cluster.ENV_NUM_PROCESSES] for e in envs} == {"2"}
    assert envs[0][cluster.ENV_ADDRESSES] == envs[1][cluster.ENV_ADDRESSES]
    assert envs[0][cluster.ENV_RUN_STAMP] == envs[1][cluster.ENV_RUN_STAMP]
    assert len(envs[0][cluster.ENV_RUN_STAMP]) == 15            # YYYYmmddTHHMMSS
    tf = [json.loads(e[cluster.ENV_TF_CONFIG]) for e in envs]
    assert tf[0]["cluster"] == tf[1]["cluster"] and [t["task"]["index"] for t in tf] == [0, 1]
    ports = [int(a.rsplit(":", 1)[1]) for a in tf[0]["cluster"]["worker"]]
    ports.append(int(envs[0][cluster.ENV_ADDRESSES].rsplit(":", 1)[1]))
    assert len(set(ports)) == 3                                  # all distinct
    # the script runs as __main__ with its own arguments
    assert seen["[1]"]["main"] == "__main__"
    assert seen["[1]"]["argv"] == [path, "--flag", "a b"]


def test_free_ports_are_distinct_and_bindable():
    ports = launch.free_ports(4)
    assert len(set(ports)) == 4
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_process_environments_describe_one_job(monkeypatch):
    envs = launch.process_environments(3, stamp="20250101T000000", base={"KEEP": "1"})
    assert [cluster.describe("jax").process_count for _ in [0]] == [1]    # this process: none
    for index, env in enumerate(envs):
        monkeypatch.setattr(os, "environ", env)
        for backend in ("jax", "tensorflow"):
            c = cluster.describe(backend)
            assert (c.process_index, c.process_count, c.chief) == (index, 3, index == 0)
        assert env["KEEP"] == "1" and env[cluster.ENV_RUN_STAMP] == "20250101T000000"
    with pytest.raises(ValueError, match="--processes must be a positive integer, got 0"):
        launch.process_environments(0)


def test_first_failure_stops_the_others_and_their_children(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    path = script(tmp_path, "fail.py", f"""
        import os, subprocess, sys, time
        index = os.environ["KERAS_DISTRIBUTION_PROCESS_ID"]
        if index == "1":
            while len(os.listdir({str(pids)!r})) < 2:    # process 0 and its child are up
                time.sleep(0.05)
            sys.exit(3)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open(os.path.join({str(pids)!r}, "child"), "w").write(str(child.pid))
        open(os.path.join({str(pids)!r}, "main"), "w").write(str(os.getpid()))
        time.sleep(600)
    """)
    start = time.monotonic()
    done = run_launcher(["--no-init", "--processes", "2", "--grace", "2", path])
    assert done.returncode == 3, done.stderr
    assert time.monotonic() - start < 60
    assert "[launch] process 1 exited with code 3; stopping the others" in done.stderr
    for name in ("main", "child"):
        pid = int((pids / name).read_text())
        assert wait_for(lambda: not alive(pid), 10), f"{name} process {pid} still runs"


def test_exit_codes_of_exceptions_and_signals(tmp_path):
    raising = script(tmp_path, "raise.py", """
        raise RuntimeError("broken on purpose")
    """)
    done = run_launcher(["--no-init", "--processes", "1", raising])
    assert done.returncode == 1
    assert "[0] RuntimeError: broken on purpose" in done.stderr.splitlines()
    message = script(tmp_path, "message.py", """
        import sys
        sys.exit("a reason")
    """)
    done = run_launcher(["--no-init", "--processes", "1", message])
    assert done.returncode == 1 and "[0] a reason" in done.stderr.splitlines()
    killed = script(tmp_path, "killed.py", """
        import os, signal
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = run_launcher(["--no-init", "--processes", "2", killed])
    assert done.returncode == 128 + signal.SIGKILL


@pytest.mark.parametrize("how", ["interrupt", "kill"])
def test_stopping_the_launcher_stops_every_process(tmp_path, how):
    pids = tmp_path / "pids"
    pids.mkdir()
    path = script(tmp_path, "sleep.py", f"""
        import os, time
        open(os.path.join({str(pids)!r}, str(os.getpid())), "w").close()
        time.sleep(600)
    """)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # Ctrl-C as a terminal delivers it: Python turns SIGINT into KeyboardInterrupt only when it
    # starts with SIGINT at its default, and a shell runs background jobs (`pytest ... &` without
    # job control) with SIGINT ignored, which every child would inherit.
    launcher = subprocess.Popen([sys.executable, "-m", "mrcnn.launch", "--no-init", "--processes",
                                 "2", "--grace", "2", path], env=env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert wait_for(lambda: len(os.listdir(pids)) == 2, 60), "processes did not start"
        children = [int(p) for p in os.listdir(pids)]
        if how == "interrupt":                      # Ctrl-C
            launcher.send_signal(signal.SIGINT)
            _, err = launcher.communicate(timeout=60)
            assert launcher.returncode == 130
            assert "[launch] interrupted; stopping every process" in err
        else:                                       # the launcher dies without cleaning up
            launcher.kill()
            launcher.wait(timeout=60)
        for pid in children:
            assert wait_for(lambda: not alive(pid), 15), f"process {pid} still runs"
    finally:
        if launcher.poll() is None:
            launcher.kill()


def test_bad_arguments_are_named(tmp_path):
    done = run_launcher(["--processes", "2", str(tmp_path / "missing.py")])
    assert done.returncode == 2
    assert f"script {str(tmp_path / 'missing.py')!r} not found" in done.stderr
    done = run_launcher(["--processes", "0", str(tmp_path / "missing.py")])
    assert done.returncode == 2 and "--processes must be >= 1, got 0" in done.stderr


def test_the_launcher_starts_without_importing_keras():
    # Every process of a job imports Keras itself; the launcher reads the cluster only.
    code = ("import sys, mrcnn.launch, mrcnn.distribute.cluster; "
            "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                             os.path.abspath(__file__)))))
    assert out.stdout.strip() == "[]", out.stdout + out.stderr

"""Start a training script as a job of several local processes: ``python -m mrcnn.launch``.

::

    python -m mrcnn.launch --processes 2 samples/cell/train.py --epochs 8

starts ``samples/cell/train.py --epochs 8`` twice, as processes 0 and 1 of
one job (the stand-in on one machine for one process per machine): each
gets the engines' environment (`mrcnn.distribute.cluster`: JAX's coordinator
address, number of processes and process id, TensorFlow's ``TF_CONFIG``, on
free local ports) and the job's time stamp (``MRCNN_RUN_STAMP``, so they
name the run folder alike), and joins the cluster
(`mrcnn.distribute.cluster.initialize`) before the script runs.

Every line a process prints is prefixed with its id (``[1] ...``). The
launcher waits for all of them and exits with the first non-zero exit code
(a process killed by signal ``s``: ``128 + s``); when one fails, the others
are stopped (SIGTERM, then SIGKILL after ``--grace`` seconds), as they are on
Ctrl-C or when the launcher is terminated. The processes also stop if the
launcher dies (Linux: parent-death signal), so none is left behind. A process
that fails ends at once (JAX's exit handler would wait for the others).

``--no-init`` leaves joining the cluster to the script (it calls
``mrcnn.distribute.cluster.initialize()`` itself, e.g. after setting up its
devices). Without GPUs each process has one CPU device; JAX processes get
more from ``XLA_FLAGS=--xla_force_host_platform_device_count=K``.
"""

import argparse
import datetime
import json
import os
import runpy
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

ENV_LAUNCHER_PID = "MRCNN_LAUNCHER_PID"
CHILD_FLAG = "--child"          # python -m mrcnn.launch --child [--no-init] script args
NO_INIT_FLAG = "--no-init"


def free_ports(count, host="127.0.0.1"):
    """`count` distinct TCP ports that were free on `host` a moment ago (bound to port 0, read back)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def process_environments(processes, host="127.0.0.1", stamp=None, base=None):
    """The environment of each of `processes` local processes of one job.

    Args:
        processes: number of processes.
        host: the address they reach each other at.
        stamp: the job's time stamp (default: now).
        base: the environment to extend (default: this process's).

    Returns:
        a list of dicts, one per process id.
    """
    from mrcnn.distribute import cluster

    if int(processes) != processes or processes < 1:
        raise ValueError(f"--processes must be a positive integer, got {processes!r}")
    ports = free_ports(processes + 1, host)
    stamp = stamp or datetime.datetime.now().strftime(cluster.STAMP_FORMAT)
    workers = [f"{host}:{port}" for port in ports[1:]]
    envs = []
    for index in range(processes):
        env = dict(os.environ if base is None else base)
        env.update({
            cluster.ENV_ADDRESSES: f"{host}:{ports[0]}",
            cluster.ENV_NUM_PROCESSES: str(processes),
            cluster.ENV_PROCESS_ID: str(index),
            cluster.ENV_TF_CONFIG: json.dumps({"cluster": {"worker": workers},
                                               "task": {"type": "worker", "index": index}}),
            cluster.ENV_RUN_STAMP: stamp,
            ENV_LAUNCHER_PID: str(os.getpid()),
            "PYTHONUNBUFFERED": "1",
        })
        envs.append(env)
    return envs


def _pipe(stream, out, prefix):
    """Copy `stream` to `out` line by line, each line prefixed."""
    for line in iter(stream.readline, b""):
        text = line.decode("utf8", errors="replace").rstrip("\r\n")
        out.write(f"{prefix}{text}\n")
        out.flush()
    stream.close()


def _exit_code(returncode):
    return 128 - returncode if returncode < 0 else returncode


def _stop(procs, grace):
    """SIGTERM every running process group, SIGKILL what is left after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        running = [p for p in procs if p.poll() is None]
        for p in running:
            try:
                os.killpg(p.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + wait
        while any(p.poll() is None for p in running) and time.monotonic() < deadline:
            time.sleep(0.05)


def launch(command, processes, grace=10.0, host="127.0.0.1", stdout=None, stderr=None,
           join=True):
    """Run `command` (a script and its arguments) as `processes` processes of one job.

    Args:
        command: the script and its arguments.
        processes: how many.
        grace: seconds between SIGTERM and SIGKILL when stopping processes.
        host: the address the processes reach each other at.
        stdout, stderr: where their prefixed lines go (default: this process's).
        join: each process joins the cluster before the script runs
            (`mrcnn.distribute.cluster.initialize`); False leaves it to the
            script.

    Returns:
        0 when every process succeeded, else the first non-zero exit code.
    """
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    if not command:
        raise ValueError("nothing to launch: give a script and its arguments")
    if not os.path.isfile(command[0]):
        raise ValueError(f"script {command[0]!r} not found (python -m mrcnn.launch --processes "
                         f"N path/to/script.py [its arguments])")
    procs, pipes = [], []
    try:
        for index, env in enumerate(process_environments(processes, host)):
            flags = [CHILD_FLAG] + ([] if join else [NO_INIT_FLAG])
            p = subprocess.Popen([sys.executable, "-m", "mrcnn.launch", *flags, *command],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 start_new_session=True)
            procs.append(p)
            for stream, out in ((p.stdout, stdout), (p.stderr, stderr)):
                t = threading.Thread(target=_pipe, args=(stream, out, f"[{index}] "), daemon=True)
                t.start()
                pipes.append(t)
        ended = []                         # in the order they ended
        while len(ended) < len(procs):
            ended += [p for p in procs if p not in ended and p.poll() is not None]
            failed = [p for p in ended if p.returncode != 0]
            if failed:
                first = _exit_code(failed[0].returncode)
                if len(ended) < len(procs):
                    stderr.write(f"[launch] process {procs.index(failed[0])} exited with code "
                                 f"{first}; stopping the others\n")
                return first
            time.sleep(0.1)
        return 0
    except KeyboardInterrupt:
        stderr.write("[launch] interrupted; stopping every process\n")
        return 130
    finally:
        _stop(procs, grace)
        for t in pipes:
            t.join(timeout=5.0)


def _die_with_launcher():
    """Linux: receive SIGTERM when the launcher dies; exit now if it already has."""
    launcher = int(os.environ.get(ENV_LAUNCHER_PID, "0") or 0)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if launcher and os.getppid() != launcher:
        sys.exit(f"[launch] the launcher (pid {launcher}) is gone; not starting")


def run_child(command, join=True):
    """In a launched process: join the cluster (unless not `join`), then run the script as ``__main__``."""
    _die_with_launcher()
    if join:
        from mrcnn.distribute import cluster

        cluster.initialize()
    script = command[0]
    sys.argv = list(command)
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        if exc.code in (None, 0):
            raise
        code = exc.code if isinstance(exc.code, int) else 1
        if not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
        _exit_now(code)
    except BaseException:      # noqa: B036 -- reported, then the process ends at once
        traceback.print_exc()
        _exit_now(1)


def _exit_now(code):
    """End a failed process at once: JAX's exit handler would wait for the others (a barrier)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _on_sigterm(*_):
    raise KeyboardInterrupt


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == [CHILD_FLAG]:
        join = argv[1:2] != [NO_INIT_FLAG]
        return run_child(argv[1 if join else 2:], join=join)
    parser = argparse.ArgumentParser(
        prog="python -m mrcnn.launch",
        description="Run a training script as several local processes of one job (JAX "
                    "distributed / TensorFlow MultiWorkerMirroredStrategy).")
    parser.add_argument("--processes", type=int, required=True, help="number of processes")
    parser.add_argument("--grace", type=float, default=10.0,
                        help="seconds between SIGTERM and SIGKILL when stopping processes")
    parser.add_argument(NO_INIT_FLAG, action="store_true",
                        help="do not join the cluster before the script starts: the script "
                             "calls mrcnn.distribute.cluster.initialize() itself (e.g. after "
                             "setting up its devices)")
    parser.add_argument("script", help="the training script, e.g. samples/cell/train.py")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")
    args = parser.parse_args(argv)
    if args.processes < 1:
        parser.error(f"--processes must be >= 1, got {args.processes}")
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return launch([args.script, *args.args], args.processes, grace=args.grace,
                      join=not args.no_init)
    except ValueError as exc:
        parser.error(str(exc))


if __name__ == "__main__":
    sys.exit(main())

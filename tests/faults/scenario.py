"""Run the victim again and again in one model_dir, killing it each time, then once to the end.

A scenario (one seed) is a list of runs of `tests/faults/victim.py`, each
with one fault (see `tests/faults/injection.py`), then random-delay kills
from outside (SIGKILL a seeded random time after training starts), then one
run without a fault that must finish. After each targeted kill the files it
interrupted are checked: the fault fired where planned and what it left is
a temporary file that nothing takes for a finished one (`footprint`).

The plan (`plan`), per seed, the K of each fault and its phase drawn from
the seed:

1. ``cache:K:<phase>``, then ``cache:K:<other phase>``: killed in epoch 1
   of a fresh run (no checkpoint yet), so the next run starts fresh again;
2. ``checkpoint:1:<phase>``: killed writing the first checkpoint of a fresh
   run (its run folder never gets a checkpoint);
3. ``step:K:<begin|end>`` with K in epoch 2: a fresh run saves checkpoint 1
   and dies in the middle of epoch 2;
4. ``checkpoint:K:<other phase>``: resumes from checkpoint 1, dies writing
   checkpoint 2 or 3;
5. ``history:1:<phase>`` and ``config:1:<phase>``: resumes, dies rewriting
   ``history.csv`` / writing ``config.json``;
6. random-delay kills, then the final run.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from tests.faults import injection, training_setup

VICTIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "victim.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_TIMEOUT_S = 600
# Random kills land uniformly in this many seconds after the victim starts training
# (on 2 CPU cores: ~3 s to compile, then ~2-3 s per epoch with its checkpoint).
RANDOM_KILL_WINDOW_S = 10.0
# The K of a cache fault is at most this; a fresh run's first epoch writes 22 entries
# (prepared samples and RPN matches of 6 training and 2 validation images).
FIRST_EPOCH_CACHE_WRITES = 8
KILLED = -signal.SIGKILL


def _other(phases, phase):
    return [p for p in phases if p != phase][0]


def plan(seed, random_kills=1):
    """The runs of a scenario: fault specs (str), ("random", delay_s), then "final"."""
    rng = np.random.default_rng(seed)
    steps = training_setup.STEPS_PER_EPOCH

    def phase(kind):
        return str(rng.choice(injection.PHASES[kind]))

    cache_phase = phase("cache")
    checkpoint_phase = phase("checkpoint")
    runs = [
        f"cache:{rng.integers(1, FIRST_EPOCH_CACHE_WRITES + 1)}:{cache_phase}",
        f"cache:{rng.integers(1, FIRST_EPOCH_CACHE_WRITES + 1)}:"
        f"{_other(injection.PHASES['cache'], cache_phase)}",
        f"checkpoint:1:{checkpoint_phase}",
        f"step:{rng.integers(steps + 1, 2 * steps + 1)}:{phase('step')}",
        f"checkpoint:{rng.integers(1, 3)}:"
        f"{_other(injection.PHASES['checkpoint'], checkpoint_phase)}",
        f"history:1:{phase('history')}",
        f"config:1:{phase('config')}",
    ]
    runs += [("random", round(float(rng.uniform(0.0, RANDOM_KILL_WINDOW_S)), 2))
             for _ in range(random_kills)]
    return runs + ["final"]


def _lines(text, prefix):
    return [line[len(prefix):] for line in text.splitlines() if line.startswith(prefix)]


def run_victim(model_dir, seed, fault=None, kill_after_s=None, log_path=None):
    """One run of the victim.

    Args:
        model_dir: its model_dir.
        seed: its seed.
        fault: a fault spec for ``$MRCNN_FAULT`` (the victim kills itself), or None.
        kill_after_s: SIGKILL it this many seconds after it prints ``VICTIM train``
            (it may finish first), or None.
        log_path: where its output goes (default: ``model_dir/../victim-<n>.log``).

    Returns:
        dict: ``rc``, ``seconds``, ``fault`` (the ``FAULT`` line's JSON or None),
        ``killed_by_parent``, ``started`` (the first ``VICTIM`` line), ``done``
        (the epoch of ``VICTIM done`` or None), ``output`` (its last 4000 characters).
    """
    # Grace 0: the next run may tidy what the killed one left at once (the
    # library waits 10 minutes by default, as another process may be writing).
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED="0",
               MRCNN_PARTIAL_SAVE_GRACE_S="0")
    env.pop("MRCNN_FAULT", None)
    if fault is not None:
        env["MRCNN_FAULT"] = fault
    log_path = log_path or os.path.join(os.path.dirname(os.path.abspath(model_dir)),
                                        f"victim-{time.monotonic_ns()}.log")
    start = time.monotonic()
    killed = False
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, VICTIM, os.fspath(model_dir), "--seed", str(seed)],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            if kill_after_s is not None:
                killed = _kill_after_training_starts(proc, log_path, kill_after_s, start)
            proc.wait(timeout=max(1.0, RUN_TIMEOUT_S - (time.monotonic() - start)))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    with open(log_path, errors="replace") as f:
        output = f.read()
    faults = [json.loads(x) for x in _lines(output, injection.FAULT_PREFIX)]
    victim = _lines(output, "VICTIM ")
    done = [int(x.split()[1]) for x in victim if x.startswith("done ")]
    return {"rc": proc.returncode, "seconds": round(time.monotonic() - start, 2),
            "fault": faults[-1] if faults else None, "killed_by_parent": killed,
            "started": victim[0] if victim else None, "done": done[-1] if done else None,
            "output": output[-4000:]}


def _kill_after_training_starts(proc, log_path, delay_s, start):
    """SIGKILL `proc` `delay_s` after its ``VICTIM train`` line; False if it ended first."""
    marker_seen = None
    while proc.poll() is None and time.monotonic() - start < RUN_TIMEOUT_S:
        if marker_seen is None:
            with open(log_path, errors="replace") as f:
                if "VICTIM train" in f.read():
                    marker_seen = time.monotonic()
        elif time.monotonic() - marker_seen >= delay_s:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    return False


def _snapshot(model_dir):
    found = set()
    for folder, _, names in os.walk(model_dir):
        found.update(os.path.join(folder, n) for n in names)
    return found


def run_scenario(model_dir, seed, random_kills=1):
    """Run the plan of `seed` in `model_dir` (created).

    Returns:
        dict: ``seed``, ``model_dir`` (its real path), ``runs`` (each: ``step``
        as planned, the `run_victim` result, ``problems`` found in the footprint
        of its kill), ``problems`` (all of them, as text) and ``seconds``.
    """
    from tests.faults import inspection

    model_dir = os.path.realpath(model_dir)     # paths compare as the victim prints them
    os.makedirs(model_dir, exist_ok=True)
    start = time.monotonic()
    runs = []
    for n, step in enumerate(plan(seed, random_kills)):
        before = _snapshot(model_dir)
        log_path = os.path.join(os.path.dirname(os.path.abspath(model_dir)),
                                f"seed{seed}-run{n}.log")
        if step == "final":
            result = run_victim(model_dir, seed, log_path=log_path)
            problems = [] if result["rc"] == 0 and result["done"] == training_setup.EPOCHS \
                else [f"did not finish: rc {result['rc']}, done {result['done']}"]
        elif isinstance(step, tuple):
            result = run_victim(model_dir, seed, kill_after_s=step[1], log_path=log_path)
            problems = [] if result["rc"] in (KILLED, 0) and not result["fault"] \
                else [f"rc {result['rc']} (expected a kill or the end)"]
        else:
            result = run_victim(model_dir, seed, fault=step, log_path=log_path)
            problems = inspection.footprint(step, result, model_dir, before)
        record = {"step": step if isinstance(step, str) else f"random:{step[1]}s",
                  **{k: v for k, v in result.items() if k != "output"}, "problems": problems}
        if problems:
            record["output"] = result["output"]
        runs.append(record)
    problems = [f"run {n} ({r['step']}): {p}" for n, r in enumerate(runs) for p in r["problems"]]
    return {"seed": seed, "model_dir": model_dir, "runs": runs, "problems": problems,
            "seconds": round(time.monotonic() - start, 1)}

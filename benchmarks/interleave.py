"""Timing two programs in turns: each round of each measured under the same machine load.

A benchmark that times ours and then the peer, minutes apart, compares two moments of the
machine as much as two programs: on a shared 2-core VM the same `detect()` took 0.31 s in one
process and 0.55 s a few minutes later (benchmarks/RESULTS.md, session 57). Here each timed
program is a *worker* process that builds and warms up its model, then times `steps` calls
each time it is told to; the parent alternates the workers round by round (ours, peer; then
peer, ours; ...), so that each round's ratio compares the two under the same conditions, and
the spread of those ratios says how far one figure can be trusted.

The protocol, one line each way (stdlib only: the peer's Python has no mrcnn):
    worker -> parent   {"ready": true}            after the warm-up
    parent -> worker   go                         time `steps` calls
    worker -> parent   {"times": [s, s, ...]}
    parent -> worker   done                       stop timing; the worker prints its
    worker -> parent   {...}                      final result (a JSON object) and exits
Lines a worker prints that do not start with "{" (progress bars) are skipped.

Worker side: `timed_calls(step, steps, serve)`. Parent side: `run_in_turns(commands, rounds)`.
"""

import json
import statistics
import subprocess
import sys
import tempfile
import time


def timed_calls(step, steps, serve=False, stdin=None, stdout=None):
    """Seconds of each of `steps` calls of `step()` (the warm-up already done by the caller).

    serve=False: `steps` calls, now. serve=True: the worker side of the protocol above: say
    ready, then `steps` calls per "go" line read from `stdin`, until "done" (or end of input);
    returns the times of every round, in order.
    """
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout

    def one_round():
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        return times

    if not serve:
        return one_round()
    print(json.dumps({"ready": True}), file=stdout, flush=True)
    every = []
    for line in stdin:
        command = line.strip()
        if command == "done":
            break
        if command != "go":
            raise ValueError(f"expected 'go' or 'done' from the parent, got {command!r}")
        times = one_round()
        every += times
        print(json.dumps({"times": times}), file=stdout, flush=True)
    return every


class Worker:
    """One worker process (its stderr kept in a temporary file, shown if it fails)."""

    def __init__(self, name, command, env=None):
        self.name = name
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, bufsize=1, env=env)

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def read(self):
        """The next JSON object the worker prints; a clear error if it exits first."""
        for line in self.proc.stdout:
            if line.startswith("{"):
                return json.loads(line)
        code = self.proc.wait()
        self.log.seek(0)
        raise RuntimeError(f"worker {self.name!r} exited (code {code}) before answering; its "
                           f"stderr ends:\n{self.log.read()[-3000:]}")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def run_in_turns(commands, rounds, env=None):
    """Starts each worker (one at a time: warm-ups and compilation do not overlap), runs
    `rounds` rounds in turns (the order reversed every other round), and returns, per worker
    name, {"rounds": [[s, ...] per round], "result": its final JSON object}.

    commands: {name: argv}, in the order of the first round.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds!r}")
    workers = []
    try:
        for name, command in commands.items():
            worker = Worker(name, command, env)
            workers.append(worker)
            answer = worker.read()
            if not answer.get("ready"):
                raise RuntimeError(f"worker {name!r} answered {answer!r}, expected ready")
        times = {w.name: [] for w in workers}
        for r in range(rounds):
            for worker in (workers if r % 2 == 0 else workers[::-1]):
                worker.send("go")
                times[worker.name].append(worker.read()["times"])
        out = {}
        for worker in workers:
            worker.send("done")
            out[worker.name] = {"rounds": times[worker.name], "result": worker.read()}
            worker.proc.wait()
        return out
    finally:
        for worker in workers:
            worker.close()


def round_ratios(slow, fast):
    """Per round, median(slow's times) / median(fast's times): how many times faster `fast`
    was in that round. slow, fast: lists of rounds, each a list of seconds."""
    if len(slow) != len(fast):
        raise ValueError(f"the two workers ran {len(slow)} and {len(fast)} rounds")
    return [statistics.median(s) / statistics.median(f) for s, f in zip(slow, fast)]

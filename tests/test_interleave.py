"""benchmarks/interleave.py: workers timed in turns, against what they record themselves.

Each fake worker stamps the wall-clock start and end of every call it times; the parent's
rounds must not overlap, must alternate their order, and must hold --steps calls each.
"""

import io
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
sys.path.insert(0, BENCH)
from interleave import round_ratios, run_in_turns, timed_calls  # noqa: E402

pytestmark = pytest.mark.backend_independent

WORKER = """
import json, sys, time
sys.path.insert(0, {bench!r})
from interleave import timed_calls
stamps = []
def step():
    start = time.time()
    time.sleep({sleep})
    stamps.append((start, time.time()))
time.sleep(0.05)   # a warm-up
times = timed_calls(step, {steps}, serve=True)
print("a progress line the parent skips")
print(json.dumps({{"name": {name!r}, "stamps": stamps, "count": len(times)}}))
"""


def worker(name, steps, sleep=0.01):
    code = WORKER.format(bench=BENCH, sleep=sleep, steps=steps, name=name)
    return [sys.executable, "-c", code]


def test_rounds_alternate_and_never_overlap():
    rounds, steps = 4, 3
    out = run_in_turns({"ours": worker("ours", steps), "peer": worker("peer", steps, 0.02)},
                       rounds)
    assert set(out) == {"ours", "peer"}
    spans = {}
    for name, run in out.items():
        assert run["result"]["name"] == name and run["result"]["count"] == rounds * steps
        assert len(run["rounds"]) == rounds
        assert all(len(r) == steps for r in run["rounds"])
        stamps = run["result"]["stamps"]
        # each round: the wall-clock span of its calls; the worker's own durations agree
        spans[name] = [(stamps[r * steps][0], stamps[r * steps + steps - 1][1])
                       for r in range(rounds)]
        for r, times in enumerate(run["rounds"]):
            own = [e - s for s, e in stamps[r * steps:(r + 1) * steps]]
            assert times == pytest.approx(own, abs=5e-3)
    order = []
    for r in range(rounds):
        first, second = ("ours", "peer") if r % 2 == 0 else ("peer", "ours")
        assert spans[first][r][1] <= spans[second][r][0], f"round {r} overlapped"
        order += [(first, r), (second, r)]
    # and the rounds follow each other: no worker starts round r+1 before r ended
    ends = [spans[name][r] for name, r in order]
    assert all(a[1] <= b[0] for a, b in zip(ends, ends[1:]))


def test_round_ratios_by_hand():
    slow = [[2.0, 3.0, 10.0], [4.0, 4.0, 4.0]]
    fast = [[1.0, 1.5, 1.0], [1.0, 2.0, 3.0]]
    assert round_ratios(slow, fast) == pytest.approx([3.0 / 1.0, 4.0 / 2.0])
    with pytest.raises(ValueError, match="ran 2 and 1 rounds"):
        round_ratios(slow, fast[:1])


def test_a_worker_that_dies_is_named_with_its_stderr():
    dying = [sys.executable, "-c", "import sys; sys.stderr.write('no torchvision here'); "
                                   "sys.exit(3)"]
    with pytest.raises(RuntimeError, match=r"(?s)worker 'peer' exited \(code 3\).*no torchvision"):
        run_in_turns({"ours": worker("ours", 1), "peer": dying}, 2)


def test_serve_refuses_a_command_it_does_not_know():
    out = io.StringIO()
    calls = []
    with pytest.raises(ValueError, match="expected 'go' or 'done' from the parent, got 'stop'"):
        timed_calls(lambda: calls.append(1), 2, serve=True, stdin=io.StringIO("go\nstop\n"),
                    stdout=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0] == {"ready": True} and len(lines[1]["times"]) == 2 and len(calls) == 2


def test_without_serve_the_calls_run_at_once():
    calls = []
    times = timed_calls(lambda: calls.append(1), 5)
    assert len(times) == 5 == len(calls) and all(t >= 0 for t in times)
    with pytest.raises(ValueError, match="rounds must be >= 1, got 0"):
        run_in_turns({"ours": worker("ours", 1)}, 0)

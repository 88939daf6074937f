"""No input costs more than its limits say: expressions are bounded by the work they do, not only
by the size of what they make, and an expansion that is refused is refused fast.

* Expression work: every evaluation of a check spends from one budget of element operations
  (``max_expr_work``; lang/expr/budget.py).  A family of hostile expressions — building,
  walking, comparing, slicing and reducing long sequences, or evaluating large ASTs — in blocks
  repeated many times ends in E505 (or a graph) within the CPU-time ceiling, whichever way the
  work is split between expressions and repeats.
* Expansion: recursive blocks that double (or triple, quadruple) at each level meet E601 at a
  cost bounded by the node limit, not by the 2^60 nodes they would make: no more than checking
  a legitimate spec of that many nodes costs on the same machine at the same moment (measured
  beside it, so that a slower CPU or a loaded one moves both).
* The real specs spend a small part of the budget.

CPU time of the checking thread, so that other processes on the machine do not count.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path

import pytest

import specgraph
from specgraph import SpecError
from specgraph.lang.expr import evaluate
from specgraph.lang.expr import budget as expr_budget
from specgraph.lang.limits import DEFAULT_LIMITS, Limits

from fuzzing import assert_located

CPU_SECONDS = 2.0
ROOT = Path(__file__).resolve().parent.parent

# Each is cheap to write and costly to evaluate: ~100,000 element operations or a 300-node AST.
HEAVY = {
    "list built": "len([0] * 99999)",
    "string built": "len('a' * 99999)",
    "lists compared": "[0] * 99999 == [0] * 99999",
    "member of a long list": "7 in [1] * 99999",
    "substring of a long string": "'b' in 'a' * 99999",
    "slice": "len(([0] * 99999)[::1])",
    "max": "max([0] * 99999)",
    "sum": "sum([1] * 99999)",
    "nested lists": "len([[0] * 999] * 99)",
    "nested compare": "[[0] * 300] * 300 == [[0] * 300] * 300",
    "wide AST": "[" + ", ".join(["1 + 1"] * 150) + "][0]",
    "long and": " and ".join(["1 < 2"] * 150),
    # iteration: each step of a comprehension is work, and so is each tuple zip/enumerate make
    "comprehension over a range": "len([i for i in range(99999)])",
    "comprehension with a test": "len([i for i in range(99999) if i < 0])",
    "comprehension unpacking pairs": "len([a for a, b in zip(range(49999), range(49999))])",
    "nested comprehension": "len([[j for j in range(300)] for i in range(300)])",
    "generator argument": "sum(i for i in range(99999))",
    "range": "len(range(99999))",
    "zip": "len(zip([0] * 49999, [1] * 49999))",
    "enumerate": "len(enumerate([0] * 49999))",
    "all": "all([[1]] * 99999)",
}


def hostile_spec(expression: str, nodes: int, repeat: int) -> str:
    body = "".join(f'      r{i}: {{op: dropout, p: "${{({expression}) * 0}}"}}\n' for i in range(nodes))
    return ("specgraph: 1\ninputs:\n  x: [N, 8]\nblocks:\n  b:\n    nodes:\n" + body
            + f"graph:\n  s: {{block: b, repeat: {repeat}}}\n")


def timed_check(text: str, limits: Limits | None = None, ceiling: float = CPU_SECONDS):
    """(the graph or the SpecError, CPU seconds of this thread).

    The check's work is deterministic; what varies is the machine (caches and cores shared with
    other processes inflate even a thread's CPU time). A check over the ceiling is timed once
    more and the lower time kept: noise only ever adds time, so a check that really costs more
    fails both times."""
    spec = specgraph.load(text, limits=limits) if limits else specgraph.load(text)
    best = float("inf")
    for _ in range(2):
        gc.collect()  # the garbage of earlier cases (100,000-slot lists) is not this check's work
        start = time.thread_time()
        try:
            outcome = specgraph.check(spec)
        except SpecError as e:
            outcome = e
        best = min(best, time.thread_time() - start)
        if best < ceiling:
            break
    return outcome, best


@pytest.mark.parametrize("nodes, repeat", [(1, 1), (60, 1), (60, 30), (20, 300)])
@pytest.mark.parametrize("name", list(HEAVY))
def test_hostile_expressions_stop_within_the_ceiling(name, nodes, repeat):
    text = hostile_spec(HEAVY[name], nodes, repeat)
    outcome, cpu = timed_check(text)
    assert cpu < CPU_SECONDS, f"{cpu:.2f} s of CPU time"
    if isinstance(outcome, SpecError):
        assert_located(outcome, text)
        assert outcome.codes == ["E505"], outcome.format()
        assert "element operations" in outcome.format() and "--limit max_expr_work" in outcome.format()
    else:  # a little work in all: it checks
        assert nodes * repeat <= 60, f"{nodes * repeat} evaluations of {name} passed the budget"


def test_the_budget_is_shared_by_every_evaluation_of_a_check():
    one = hostile_spec(HEAVY["list built"], 1, 1)
    outcome, _ = timed_check(one)
    assert not isinstance(outcome, SpecError)  # one evaluation is well within the budget
    outcome, _ = timed_check(hostile_spec(HEAVY["list built"], 1, 1), Limits(max_expr_work=100_000))
    assert isinstance(outcome, SpecError) and outcome.codes == ["E505"]  # ... and counted against it


def test_a_lone_evaluation_has_a_budget_of_its_own():
    with pytest.raises(Exception) as e:
        evaluate("${len([0] * 99999) + len([0] * 99999)}", {}, Limits(max_expr_work=150_000))
    assert getattr(e.value, "code", None) == "E505"
    assert evaluate("${len([0] * 99999)}", {}, Limits(max_expr_work=400_000)) == 99999


def test_each_check_has_a_fresh_budget():
    text = hostile_spec(HEAVY["list built"], 10, 1)
    for _ in range(5):  # would run out by the third check if the budget were shared between checks
        outcome, _ = timed_check(text, Limits(max_expr_work=4_000_000))
        assert not isinstance(outcome, SpecError), outcome.format()


def test_real_specs_spend_a_small_part_of_the_budget(monkeypatch):
    spent: list[int] = []
    opened = expr_budget.work_budget

    from contextlib import contextmanager

    @contextmanager
    def recording(limits):
        with opened(limits) as b:
            yield b
            spent.append(b.limit - b.left)

    monkeypatch.setattr(expr_budget, "work_budget", recording)
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        spent.clear()
        specgraph.check(path)
        assert spent and spent[-1] < DEFAULT_LIMITS.max_expr_work // 50, f"{path.name} spent {spent}"


# ---- expansion that doubles ------------------------------------------------------------------------

def recursive_spec(branches: int, body: int) -> str:
    nodes = "".join(f"      n{i}: {{op: linear, out: \"${{w + 0 * d}}\"}}\n" for i in range(body))
    children = "".join(f'      c{i}: {{block: b, d: "${{d - 1}}", w: "$w", when: "${{d > 0 and w > 0}}"}}\n'
                       for i in range(branches))
    return ("specgraph: 1\ninputs:\n  x: [N, 8]\nblocks:\n  b:\n    params: {d: int, w: 8}\n    nodes:\n"
            + nodes + children + "graph:\n  s: {block: b, d: 60}\n")


def repeated_spec(instances: int) -> str:
    """A legitimate spec of ``instances`` block instances of one node each (the recursive
    block's body, without the recursion)."""
    return ("specgraph: 1\ninputs:\n  x: [N, 8]\nblocks:\n  b:\n    params: {d: int, w: 8}\n    nodes:\n"
            "      n0: {op: linear, out: \"${w + 0 * d}\"}\n"
            f"graph:\n  s: {{block: b, d: 3, repeat: {instances}}}\n")


# Checking a tenth of the limit's worth of legitimate nodes, times ten: checking grows linearly
# with the nodes (0.28 s for 2,000 instances, 3.0 s for 20,000 here), and a tenth keeps the
# measurement short enough to take beside every case.
SHARE = 10


@pytest.mark.parametrize("branches", [2, 3, 4])
@pytest.mark.parametrize("body", [1, 3, 6])
def test_a_recursive_block_that_multiplies_is_refused_fast(branches, body):
    legitimate = repeated_spec(DEFAULT_LIMITS.max_graph_nodes // SHARE)
    reference = min(timed_check(legitimate)[1] for _ in range(2)) * SHARE
    text = recursive_spec(branches, body)
    outcome, cpu = timed_check(text, ceiling=reference)
    assert isinstance(outcome, SpecError) and outcome.codes == ["E601"], outcome
    assert_located(outcome, text)
    # The refusal spends at most what the limit allows a legitimate spec: 20,000 nodes visited
    # cost ~0.5-0.7 of checking 20,000 real ones (1.5-2.1 s against 3.0 s on this 2-core EPYC,
    # quiet), where it took ~7 s before the visits were counted.
    assert cpu < reference, f"{cpu:.2f} s of CPU time to refuse, {reference:.2f} s to check as many real nodes"

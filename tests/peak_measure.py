"""Shared by the memory tests: the CPU allocator's real peak, read from the profiler.

torch's CPU allocator reports every allocation and free to the profiler when
``profile_memory=True``, with the allocator's own running total of the bytes it has handed out
and not yet taken back ("Total Allocated" on each ``[memory]`` event of the exported trace).
The largest such total during a call, less the total at its start, is the peak of what torch
allocated — kernels' scratch (oneDNN's reordered weights, max-pool indices) included — counted
from the start of the call, so what was allocated before (the inputs, the parameters) is added
by the caller; what the call frees that was allocated before (a previous step's gradients) is
not seen, so the caller counts it out.  (The
profiler's ``function_events`` list drops most of these events; the trace keeps them.)
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Callable

import torch
from torch.profiler import ProfilerActivity, profile


def allocator_peak(call: Callable[[], object]) -> int:
    """The highest total of bytes torch's CPU allocator holds during ``call()``, counted from its
    start (0 when it allocates nothing).  ``call`` runs twice: once to warm up (one-time
    allocations: thread pools, lazy init), once profiled."""
    call()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call()
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)["traceEvents"]
    finally:
        os.unlink(path)
    memory = [e["args"] for e in events if e.get("name") == "[memory]" and e["args"].get("Device Type") == 0]
    if not memory:
        return 0
    # The allocator's total is counted over the process's profiled allocations: one made in an
    # earlier profiled call and freed unprofiled (a previous step's gradients) stays in it.  The
    # total before the call's first event is its start.
    start = memory[0]["Total Allocated"] - memory[0]["Bytes"]
    return max(m["Total Allocated"] for m in memory) - start


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def measured_peak(model, inputs) -> int:
    """Peak bytes torch's CPU allocator holds during one eval forward under no_grad, the inputs
    (allocated before the call) included; the parameters left out."""
    def forward():
        with torch.no_grad():
            out = model(*inputs)
            del out

    return allocator_peak(forward) + tensor_bytes(inputs)


def random_inputs(graph, sizes):
    """One random tensor per graph input at ``sizes``: ids {0, 1} for integer inputs, a random mask
    for bool ones, normal floats otherwise."""
    torch.manual_seed(0)
    made = []
    for t in graph.inputs.values():
        shape = t.concrete(**sizes)
        if t.dtype == "bool":
            made.append(torch.rand(shape) > 0.3)
        elif t.dtype.startswith("int"):
            made.append(torch.randint(0, 2, shape, dtype=getattr(torch, t.dtype)))
        else:
            made.append(torch.randn(shape))
    return made

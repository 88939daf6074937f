"""Memory: the liveness walk over a Graph (walk.py, exact on any machine) and the kernel
scratch it adds, per op class and ISA (scratch.py: the registry; kernels/: the built-in ops'
models, one module per op family; machine.py: the ISA)."""

from .machine import Machine, detect
from .scratch import Allocations, MemoryContext, no_scratch, register_scratch, scratch_model, unregister_scratch
from .walk import MemoryReport, NodeMemory, SizeError, Tensor, format_bytes, memory_report, resolve_sizes

__all__ = ["memory_report", "resolve_sizes", "MemoryReport", "NodeMemory", "SizeError", "Tensor", "format_bytes",
           "register_scratch", "no_scratch", "unregister_scratch", "scratch_model", "MemoryContext", "Allocations",
           "Machine", "detect"]

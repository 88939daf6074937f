"""The scratch models of the built-in ops' CPU kernels, one module per op family (as in ops/):
each registers its models on the op classes when imported (scratch.py holds the registry).

Every constant says where it comes from: torch's source, or a measurement with the profiler
(tests/test_memory.py holds the models to within its tolerance on AVX2 and AVX-512).
"""

from . import attention, contraction, conv, indexing, norm_pool, outputs_only, recurrent  # noqa: F401  (registration)

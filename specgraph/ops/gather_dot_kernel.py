"""The gather-dot kernel in C: ``scores[n, k] = A[a[n]] · B[b[n, k]]`` and its backward, for
rows of (one index into table A, K indices into table B), never materialising the [N, K, dim]
product that embedding -> unsqueeze -> embedding -> mul -> sum builds (word2vec's skip-gram with
negative sampling: a centre word's input vector against its context word's and negatives'
output vectors).

Built by the system C compiler on first use and cached (ops/c_build.py).  One thread, rows in
order: the backward accumulates into dense [V, dim] gradients serially, so duplicate indices in a
batch (the common case: frequent words) add up exactly as torch's embedding backward does, and
the result is deterministic.  Each dot product sums in 8 interleaved lanes, in the same order on
every machine (the flags forbid fused multiply-adds and -ffast-math reordering), so the AVX2 copy
of the functions (chosen at load time where the CPU has it) gives the same bits as the SSE2 one.

Torch-free: callers pass data pointers (float32 tables, int64 indices, C-contiguous);
ops/gather_dot_function.py is the autograd function around it.
"""

from __future__ import annotations

import ctypes

from .c_build import compiled_library

SOURCE = r"""
#include <stdint.h>
#define LANES 8
/* AVX2 where the CPU has it, picked when the library loads (GCC/clang on x86-64 Linux): the same
   results, as every operation is lane by lane and the lanes are summed in one fixed order. */
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__)
#define WIDE __attribute__((target_clones("avx2", "default")))
#else
#define WIDE
#endif

static inline float dot(const float *restrict a, const float *restrict b, int64_t d) {
  float acc[LANES] = {0};
  int64_t i = 0;
  for (; i + LANES <= d; i += LANES)
    for (int l = 0; l < LANES; l++) acc[l] += a[i + l] * b[i + l];
  float s = 0.f;
  for (int l = 0; l < LANES; l++) s += acc[l];
  for (; i < d; i++) s += a[i] * b[i];
  return s;
}

static inline void axpy(float *restrict y, float g, const float *restrict x, int64_t d) {
  for (int64_t i = 0; i < d; i++) y[i] += g * x[i];
}

/* scores[n*k + j] = A[a[n]] . B[b[n*k + j]]; returns -1, or the first row holding an index out of
   range (then the caller lets torch raise its own error). */
WIDE int64_t gather_dot_forward(const float *restrict A, const float *restrict B, const int64_t *restrict a,
                           const int64_t *restrict b, int64_t rows, int64_t k, int64_t d, int64_t a_rows,
                           int64_t b_rows, float *restrict scores) {
  for (int64_t n = 0; n < rows; n++) {
    int64_t i = a[n];
    if (i < 0 || i >= a_rows) return n;
    for (int64_t j = 0; j < k; j++) {
      int64_t w = b[n * k + j];
      if (w < 0 || w >= b_rows) return n;
      scores[n * k + j] = dot(A + i * d, B + w * d, d);
    }
  }
  return -1;
}

/* dA[a[n]] += sum_j g[n, j] B[b[n, j]];  dB[b[n, j]] += g[n, j] A[a[n]]  (either may be NULL: not wanted).
   Indices were checked by the forward. */
WIDE void gather_dot_backward(const float *restrict A, const float *restrict B, const int64_t *restrict a,
                              const int64_t *restrict b, const float *restrict g, int64_t rows, int64_t k,
                              int64_t d, float *restrict dA, float *restrict dB) {
  for (int64_t n = 0; n < rows; n++) {
    int64_t i = a[n];
    for (int64_t j = 0; j < k; j++) {
      int64_t w = b[n * k + j];
      float gj = g[n * k + j];
      if (dA) axpy(dA + i * d, gj, B + w * d, d);
      if (dB) axpy(dB + w * d, gj, A + i * d, d);
    }
  }
}
"""

_P, _I = ctypes.c_void_p, ctypes.c_int64


def kernel() -> "ctypes.CDLL | str":
    """The compiled kernel (its two functions typed), or why there is none, as a phrase."""
    lib = compiled_library("gather_dot", SOURCE)
    if isinstance(lib, str) or lib.gather_dot_forward.restype is _I:  # typed once per process
        return lib
    lib.gather_dot_forward.restype = _I
    lib.gather_dot_forward.argtypes = [_P, _P, _P, _P, _I, _I, _I, _I, _I, _P]
    lib.gather_dot_backward.restype = None
    lib.gather_dot_backward.argtypes = [_P, _P, _P, _P, _P, _I, _I, _I, _P, _P]
    return lib


def unavailable() -> str | None:
    """Why the kernel cannot run here (no compiler, a failed build), or None when it can."""
    lib = kernel()
    return lib if isinstance(lib, str) else None


__all__ = ["kernel", "unavailable", "SOURCE"]

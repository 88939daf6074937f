"""The memory of one training step: arithmetic on what a run without memory measured.

The forward and backward passes are run without memory by the torch stage
(:func:`specgraph.torch.train_memory.training_step`, which this module never imports: it
takes any object with the same fields).  Added here, as the optimizer allocates them:

- the **optimizer state**, alive through the whole step once the first step made it: Adam and
  AdamW keep two tensors per parameter (the moving averages of the gradient and of its square),
  SGD with momentum (specgraph train's SGD) one (the momentum buffer);
- the **optimizer step**: the gradients are still alive (zeroed to None only before the next
  forward), and torch's CPU Adam/AdamW (one parameter at a time: no foreach kernels on CPU)
  makes two temporaries of each parameter's size (``exp_avg_sq.sqrt()`` and its division by the
  bias correction); SGD updates in place.

The predicted peak of a steady training step (the state made, the gradients zeroed to None
before the forward) is the state plus the highest of the forward's, the backward's and the
optimizer step's live bytes, each counting the parameters, buffers and the batch.  Weight decay
(not specgraph train's default) would add one more temporary per parameter in Adam's step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Protocol

from .memory.walk import format_bytes

# optimizer -> (state tensors per parameter, temporaries of a parameter's size in its step)
OPTIMIZERS: dict[str, tuple[int, int]] = {"adam": (2, 2), "adamw": (2, 2), "sgd": (1, 0)}
PRECISIONS = ("32", "bf16-mixed", "16-mixed")


class StepLike(Protocol):
    """What :func:`specgraph.torch.train_memory.training_step` measures (bytes)."""

    param_bytes: int
    largest_param_bytes: int
    buffer_bytes: int
    input_bytes: int
    saved_bytes: int
    output_bytes: int
    forward_peak: int
    backward_peak: int
    after_backward: int
    peak_op: str


@dataclass(frozen=True)
class TrainingMemory:
    """One training step's memory at ``batch_size``, on CPU (see the module docstring)."""

    batch_size: int
    sizes: dict[str, int]
    optimizer: str
    precision: str
    param_bytes: int
    grad_bytes: int
    state_bytes: int
    buffer_bytes: int
    input_bytes: int
    saved_bytes: int
    forward_peak: int  # live bytes, the optimizer state included
    backward_peak: int
    step_peak: int  # during the optimizer's step
    peak_op: str

    @property
    def peak(self) -> int:
        return max(self.forward_peak, self.backward_peak, self.step_peak)

    @property
    def peak_phase(self) -> str:
        phases = {"forward": self.forward_peak, "backward": self.backward_peak, "optimizer step": self.step_peak}
        return max(phases, key=phases.get)

    def lines(self) -> list[str]:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        per = OPTIMIZERS[self.optimizer][0]
        at = f" ({self.peak_op})" if self.peak_phase != "optimizer step" and self.peak_op else ""
        return [f"training step at {sizes} ({self.optimizer}, precision {self.precision}, CPU): "
                f"parameters {format_bytes(self.param_bytes)}, gradients {format_bytes(self.grad_bytes)}, "
                f"optimizer state {format_bytes(self.state_bytes)} ({per} per parameter), "
                f"buffers {format_bytes(self.buffer_bytes)}",
                f"  activations saved for backward {format_bytes(self.saved_bytes)}, "
                f"inputs {format_bytes(self.input_bytes)}",
                f"  predicted peak {format_bytes(self.peak)}, during the {self.peak_phase}{at} "
                f"(forward {format_bytes(self.forward_peak)}, backward {format_bytes(self.backward_peak)}, "
                f"optimizer step {format_bytes(self.step_peak)})"]

    def to_json(self) -> dict:
        return {"batch_size": self.batch_size, "sizes": self.sizes, "optimizer": self.optimizer,
                "precision": self.precision, "param_bytes": self.param_bytes, "grad_bytes": self.grad_bytes,
                "optimizer_state_bytes": self.state_bytes, "buffer_bytes": self.buffer_bytes,
                "input_bytes": self.input_bytes, "saved_activation_bytes": self.saved_bytes,
                "forward_peak_bytes": self.forward_peak, "backward_peak_bytes": self.backward_peak,
                "optimizer_step_peak_bytes": self.step_peak, "peak_bytes": self.peak,
                "peak_phase": self.peak_phase, "peak_op": self.peak_op}


def training_memory(step: StepLike, sizes: dict[str, int], optimizer: str = "adam",
                    precision: str = "32") -> TrainingMemory:
    """The step's memory with ``optimizer``'s state and update added to ``step`` (its forward and
    backward, measured at ``sizes``)."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, found {optimizer!r}")
    per_param, temporaries = OPTIMIZERS[optimizer]
    state = per_param * step.param_bytes
    update = step.after_backward + temporaries * step.largest_param_bytes
    return TrainingMemory(sizes.get("N", 1), dict(sizes), optimizer, precision, step.param_bytes, step.param_bytes,
                          state, step.buffer_bytes, step.input_bytes, step.saved_bytes, step.forward_peak + state,
                          step.backward_peak + state, update + state, step.peak_op)


def largest_batch(peak_at: Callable[[int], int], budget: int, limit: int = 1 << 20) -> int:
    """The largest batch size whose peak (``peak_at(batch)``, increasing with it) is at most
    ``budget`` bytes; 0 when even a batch of 1 is over, ``limit`` at most.  A batch that fits
    and one that does not are found by doubling (or at once, by the line through batches 1
    and 2 where it rises), then the bracket is closed by the line through its two ends (the
    peak grows almost linearly with the batch), checked on each side."""
    known: dict[int, int] = {}

    def fits(batch: int) -> bool:
        if batch not in known:
            known[batch] = peak_at(batch)
        return known[batch] <= budget

    if not fits(1):
        return 0
    low, high = 1, None  # the largest batch known to fit, the smallest known not to
    if limit > 1 and known.get(1) is not None and fits(2):
        low, rise = 2, known[2] - known[1]
        guess = min(limit, 2 + (budget - known[2]) // rise) if rise > 0 else 2
        if guess > 2:
            if fits(guess):
                low = guess
            else:
                high = guess
    elif limit > 1:
        high = 2
    while high is None:
        if low >= limit:
            return limit
        probe = min(limit, low * 2)
        if fits(probe):
            low = probe
        else:
            high = probe
    while high - low > 1:
        line = low + (budget - known[low]) * (high - low) // max(known[high] - known[low], 1)
        probe = min(max(line, low + 1), high - 1)
        if fits(probe):
            low = probe
            if probe + 1 < high and not fits(probe + 1):
                high = probe + 1
        else:
            high = probe
    return low


_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12,
          "tb": 10**12, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def parse_bytes(text: str) -> int:
    """'24GiB', '1.5 GB', '512MiB', '1000000' -> bytes (KiB/MiB/GiB/TiB binary; KB/MB/GB/TB and
    K/M/G/T decimal).  ValueError for anything else."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"expected a size such as 24GiB, 16GB or 512MiB, found {text!r}")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if value < 1:
        raise ValueError(f"a memory size must be at least one byte, found {text!r}")
    return int(value)


__all__ = ["TrainingMemory", "training_memory", "largest_batch", "parse_bytes", "OPTIMIZERS", "PRECISIONS", "StepLike"]

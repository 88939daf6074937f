"""Weights of torch's recurrent modules, renamed for the gate-level cells in specs/cells/.

The cells keep torch's fused layout — one ``x2h`` linear holding W_ih (all gates, torch's
gate order) and one ``h2h`` holding W_hh — so the mapping is a renaming, no reshaping:

    weight_ih[_lk][_reverse] -> x2h.weight      bias_ih[...] -> x2h.bias
    weight_hh[_lk][_reverse] -> h2h.weight      bias_hh[...] -> h2h.bias
"""

from __future__ import annotations

from typing import Mapping

import torch

_NAMES = {"weight_ih": "x2h.weight", "bias_ih": "x2h.bias", "weight_hh": "h2h.weight", "bias_hh": "h2h.bias"}


def from_torch(state_dict: Mapping[str, torch.Tensor], prefix: str = "", layer: int | None = None,
               reverse: bool = False) -> dict[str, torch.Tensor]:
    """The cell weights in ``state_dict`` (of an RNNCell/LSTMCell/GRUCell, or of layer
    ``layer`` (and direction) of an RNN/LSTM/GRU) under the cell's names, each prefixed by ``prefix``
    (e.g. ``"encoder.cell."`` for a scan node called encoder)."""
    suffix = "" if layer is None else f"_l{layer}" + ("_reverse" if reverse else "")
    out = {}
    for torch_name, cell_name in _NAMES.items():
        key = torch_name + suffix
        if key in state_dict:
            out[prefix + cell_name] = state_dict[key]
    if not out:
        raise KeyError(f"no {', '.join(k + suffix for k in _NAMES)} in the state_dict")
    return out

"""What a node may be called: a name that is also a module attribute in the built torch module."""

from __future__ import annotations

import re

# Names may be numbers too ("0", quoted in YAML): hand-written models number parallel branches.
NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")
# The copies a `repeat` names from a template may also hold '-' (torchvision's RegNet:
# `trunk_output.block1.block1-0`): they are never written in `from:` or an expression.
COPY_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
# `{expr}` parts of a name template, evaluated with `index` (and the params) in sight.
TEMPLATE_PART_RE = re.compile(r"\{([^{}]*)\}")
# Node names become submodule names, which cannot be attributes of torch's Module or fx's
# GraphModule (`train`, `to`, `graph`, ...): add_module refuses them. Listed here so that
# checking never imports torch (from torch 2.x's dir(torch.fx.GraphModule)).
RESERVED_NAMES = frozenset("""
    T_destination add_module add_submodule apply bfloat16 buffers call_super_init children code compile cpu cuda
    delete_all_unused_submodules delete_submodule double dump_patches eval extra_repr float forward get_buffer
    get_extra_state get_parameter get_submodule graph half ipu load_state_dict meta modules mtia named_buffers
    named_children named_modules named_parameters parameters print_readable recompile register_backward_hook
    register_buffer register_forward_hook register_forward_pre_hook register_full_backward_hook
    register_full_backward_pre_hook register_load_state_dict_post_hook register_load_state_dict_pre_hook
    register_module register_parameter register_state_dict_post_hook register_state_dict_pre_hook requires_grad_
    set_extra_state set_submodule share_memory state_dict to to_empty to_folder train training type xpu zero_grad
""".split()) | {"input_check"}  # the built module's input check (torch/input_check.py)


__all__ = ["NAME_RE", "COPY_NAME_RE", "TEMPLATE_PART_RE", "RESERVED_NAMES"]

"""Resource limits that keep hostile or mistaken specs from hanging or exhausting memory.

Every limit produces a clear error (code E1xx for the YAML layer, E5xx for expressions,
E6xx for the compiled graph) rather than a hang. They are generous for real architectures
and can be raised: ``specgraph check --limit max_graph_nodes=2000000`` or
``specgraph.load(..., limits=Limits(max_graph_nodes=...))``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 8 * 1024 * 1024  # one spec file
    max_yaml_depth: int = 64  # nesting of mappings/lists
    max_yaml_nodes: int = 500_000  # YAML values after alias expansion (billion laughs)
    max_yaml_aliases: int = 10_000
    max_include_depth: int = 16
    max_expr_chars: int = 2_000
    max_expr_nodes: int = 500  # AST nodes of one expression
    max_int_bits: int = 64  # integers computed by expressions
    max_sequence_len: int = 100_000  # lists/strings computed by expressions
    # Element operations of all the expressions of one check (lang/expr/budget.py): the specs in
    # specs/ spend at most ~160,000 (swin_t, efficientnet_v2_s: ~300 a node, so a 20,000-node
    # graph ~6,000,000); 20,000,000 is about half a second of evaluation.
    max_expr_work: int = 20_000_000
    max_repeat: int = 100_000  # one `repeat:`
    # Nodes after expansion. Checking costs ~30-70 µs and ~3 KB per node, so 20,000 keeps a
    # hostile `repeat` within ~2 s and ~100 MB, while the largest real networks use a few thousand.
    max_graph_nodes: int = 20_000
    max_block_depth: int = 64  # blocks instantiated inside blocks
    max_dim: int = 2**40  # one tensor dimension
    max_numel: int = 2**50  # elements of one tensor (at batch 1)

    def with_overrides(self, **changes: int) -> "Limits":
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown limit(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        bad = {k: v for k, v in changes.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0}
        if bad:  # a negative limit refuses everything, with messages that make no sense ("exceeds -5")
            raise ValueError(", ".join(f"{k}={v!r}" for k, v in bad.items()) + ": a limit is a non-negative integer")
        return replace(self, **changes)


DEFAULT_LIMITS = Limits()

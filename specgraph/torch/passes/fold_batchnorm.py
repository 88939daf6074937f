"""Fold an eval-mode batch norm into the conv2d / conv_transpose2d / linear before it.

An eval-mode batch norm is a per-channel affine map, so it can be baked into the producer's
weight and bias.  Only when the producer's output feeds nothing but the batch norm (otherwise
the unnormalised value is still needed) and the batch norm uses running statistics.  A linear +
batchnorm1d pair is folded only when the linear's spec node shows its output is ``[N, F]`` (for
``[N, C, L]`` batchnorm1d normalises dim 1, which is not the linear's feature dim).
"""

from __future__ import annotations

from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from .base import SpecPass, module_of, spec_node

CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
CONV_TRANSPOSE_TYPES = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class FoldBatchNorm(SpecPass):
    """``changed``: the (producer, batch norm) paths folded.  The producer's submodule is
    replaced by the fused one (same path); the batch norm's node and submodule are removed."""

    name = "fold_batchnorm"

    def run(self, gm: fx.GraphModule) -> list[tuple[str, str]]:
        folded = []
        for node in list(gm.graph.nodes):
            bn = module_of(gm, node)
            if not isinstance(bn, BN_TYPES) or len(node.args) != 1 or node.kwargs:
                continue
            producer = node.args[0]
            prev = module_of(gm, producer) if isinstance(producer, fx.Node) else None
            if prev is None or len(producer.users) != 1 or not _foldable_stats(bn):
                continue
            if isinstance(prev, CONV_TYPES + CONV_TRANSPOSE_TYPES):
                if _spatial_dims(prev) != _spatial_dims(bn) or prev.out_channels != bn.num_features:
                    continue
                fused = fuse_conv_bn_eval(prev.eval(), bn.eval(), transpose=isinstance(prev, CONV_TRANSPOSE_TYPES))
            elif isinstance(prev, nn.Linear) and isinstance(bn, nn.BatchNorm1d):
                made = spec_node(producer)
                if made is None or made.out.rank != 2 or prev.out_features != bn.num_features:
                    continue
                fused = fuse_linear_bn_eval(prev.eval(), bn.eval())
            else:
                continue
            _replace_submodule(gm, producer.target, fused)
            node.replace_all_uses_with(producer)
            gm.graph.erase_node(node)
            folded.append((producer.target, node.target))
        return folded


def fold_batchnorm(gm: fx.GraphModule, graph=None) -> list[tuple[str, str]]:
    """Run :class:`FoldBatchNorm` on ``gm`` in place; returns the pairs folded.  (``graph`` is
    accepted for compatibility: the spec nodes come with the built module now.)"""
    fold = FoldBatchNorm()
    fold(gm)
    return fold.changed


def _spatial_dims(module: nn.Module) -> int:
    for dims, types in enumerate(((nn.Conv1d, nn.ConvTranspose1d, nn.BatchNorm1d),
                                  (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d),
                                  (nn.Conv3d, nn.ConvTranspose3d, nn.BatchNorm3d)), start=1):
        if isinstance(module, types):
            return dims
    return 0


def _foldable_stats(bn: nn.Module) -> bool:
    # Without running statistics, eval-mode batch norm normalises with the batch's own
    # statistics: not an affine map that can be folded.
    return bn.track_running_stats and bn.running_mean is not None and bn.running_var is not None


def _replace_submodule(gm: fx.GraphModule, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = gm.get_submodule(parent_path) if parent_path else gm
    setattr(parent, name, module)

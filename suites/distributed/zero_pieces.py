"""ZeRO stage 1/2: the client optimizer steps per-layer pieces of DeepSpeed's flat fp32 partitions.

DeepSpeed's ZeRO-1/2 optimizer flattens each param group (the model's tensors laid end to end,
with alignment padding), splits the flat buffer evenly over the data-parallel ranks, and hands the
client optimizer ONE flat fp32 tensor per group: this rank's partition. A normalizing optimizer
would then take the norm of a mix of layers. `ZeroPieces` replaces each group's flat tensor by
views of it, one per model tensor that overlaps the partition (padding excluded), lends each view
its slice of the flat gradient around every step, and tells the optimizer (as its NormSharding)
which layer each piece belongs to and how to sum squared norms over the ranks.

This module is the only place that reads DeepSpeed's ZeRO internals (checked on construction).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from nightbench.optimizers.sharding import set_norm_sharding

# Attributes of deepspeed.runtime.zero.stage_1_and_2.DeepSpeedZeroOptimizer this module relies on.
_REQUIRED = ("single_partition_of_fp32_groups", "round_robin_bit16_groups", "round_robin_bit16_offsets",
             "bit16_groups", "partition_size", "real_dp_process_group", "dp_process_group",
             "_hp_optimizer_states_linked")


@dataclass
class _Piece:
    view: torch.Tensor  # a view of the flat partition: this rank's elements of one model tensor
    start: int  # offset in the flat partition
    length: int


@dataclass
class _Group:
    flat: torch.Tensor  # DeepSpeed's fp32 partition of the group (holds the gradient during step)
    pieces: list[_Piece]


class ZeroPieces:
    """Per-layer pieces for a client optimizer wrapped by DeepSpeed's ZeRO-1/2 optimizer."""

    def __init__(self, zero_optimizer, client: torch.optim.Optimizer, device: torch.device):
        missing = [name for name in _REQUIRED if not hasattr(zero_optimizer, name)]
        if missing:
            import deepspeed

            raise RuntimeError(f"DeepSpeed {deepspeed.__version__}'s ZeRO optimizer lacks {missing}; nightbench's "
                               "per-layer pieces (suites/distributed/zero_pieces.py) follow DeepSpeed 0.19")
        self.device = device
        self.process_group = zero_optimizer.dp_process_group
        layer_index = {id(p): i for i, p in enumerate(p for group in zero_optimizer.bit16_groups for p in group)}
        self.num_layers = len(layer_index)
        self._layer_of: dict[int, int] = {}
        self._groups: dict[int, _Group] = {}
        for i, group in enumerate(client.param_groups):
            flat = zero_optimizer.single_partition_of_fp32_groups[i]
            if len(group["params"]) != 1 or group["params"][0] is not flat:
                raise RuntimeError("DeepSpeed's ZeRO optimizer did not hand the client one flat partition per group")
            rank = dist.get_rank(group=zero_optimizer.real_dp_process_group[i])
            low = rank * zero_optimizer.partition_size[i]
            high = low + zero_optimizer.partition_size[i]
            pieces = []
            for param, offset in zip(zero_optimizer.round_robin_bit16_groups[i],
                                     zero_optimizer.round_robin_bit16_offsets[i]):
                start, stop = max(low, offset), min(high, offset + param.numel())
                if start < stop:
                    view = flat.detach().narrow(0, start - low, stop - start)
                    pieces.append(_Piece(view, start - low, stop - start))
                    self._layer_of[id(view)] = layer_index[id(param)]
            group["params"] = [piece.view for piece in pieces]
            if pieces:  # keyed by its first piece: load_state_dict replaces the group dicts, not the pieces
                self._groups[id(pieces[0].view)] = _Group(flat, pieces)
        # DeepSpeed links flat optimizer-state fragments to the model's tensors after the first
        # step, for universal checkpoints; the client's state is per piece here, so that link
        # (which would add the flat tensor to the client's state) must not happen.
        zero_optimizer._hp_optimizer_states_linked = True
        client.register_step_pre_hook(self._lend_gradients)
        client.register_step_post_hook(self._take_back_gradients)
        set_norm_sharding(client, self)

    # --- NormSharding -------------------------------------------------------------------------
    def layer_of(self, piece: torch.Tensor) -> int:
        return self._layer_of[id(piece)]

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        summed = values.to(self.device)
        dist.all_reduce(summed, group=self.process_group)
        return summed.to(values.device)  # back where the optimizer keeps it: no host copy on a GPU

    # --- the gradient of each piece around the client's step --------------------------------
    def _lend_gradients(self, optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        for group in optimizer.param_groups:  # ZeRO steps one group at a time
            if not group["params"]:
                continue  # this rank's slice of the group is all padding
            entry = self._groups[id(group["params"][0])]
            grad = entry.flat.grad
            for piece in entry.pieces:
                piece.view.grad = None if grad is None else grad.narrow(0, piece.start, piece.length)

    def _take_back_gradients(self, optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        for group in optimizer.param_groups:  # drop the views so DeepSpeed can free the flat gradient
            for view in group["params"]:
                view.grad = None

"""The trained weights held by a DeepSpeed run's checkpoint, as one fp32 state dict.

For optimizers that train elsewhere than they report (NIGT holds x_t), these are the weights the
model held when the checkpoint was taken, as in the single-process engine's checkpoint.pt.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..run_dir import read_json
from .trainer import CHECKPOINT_DIR, META_FILE


def checkpoint_weights(run_dir: str | Path) -> dict[str, torch.Tensor]:
    """The model's state dict in the run's latest DeepSpeed checkpoint (fp32 master weights)."""
    checkpoint_dir = Path(run_dir) / CHECKPOINT_DIR
    try:
        tag = (checkpoint_dir / "latest").read_text().strip()
    except OSError:
        raise FileNotFoundError(f"{run_dir} has no DeepSpeed checkpoint (no {checkpoint_dir / 'latest'})") from None
    meta = read_json(checkpoint_dir / tag / META_FILE) or {}
    if meta.get("zero_stage", 0) == 0:  # every rank held whole fp32 tensors: the module state is exact
        module = torch.load(checkpoint_dir / tag / "mp_rank_00_model_states.pt", map_location="cpu",
                            weights_only=False)["module"]
        return {name: tensor.float() for name, tensor in module.items()}
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    return get_fp32_state_dict_from_zero_checkpoint(str(checkpoint_dir), tag=tag)

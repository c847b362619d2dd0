"""The trained weights held by a DeepSpeed run's checkpoint, as one fp32 state dict.

For optimizers that train elsewhere than they report (NIGT holds x_t), these are the weights the
model held when the checkpoint was taken, as in the single-process engine's checkpoint.pt.
Every file is read without running code from it (safe_load.py); DeepSpeed's ZeRO 1/2 merger,
which unpickles with weights_only=False, runs only on files that passed that check.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..run_dir import read_json
from .checkpoints import CHECKPOINT_DIR
from .safe_load import META_FILE, MODEL_STATES_FILE, check_tag, load_deepspeed_file, read_latest


def checkpoint_weights(run_dir: str | Path) -> dict[str, torch.Tensor]:
    """The model's state dict in the run's latest DeepSpeed checkpoint (fp32 master weights).

    Raises FileNotFoundError without a checkpoint, DamagedCheckpointError (naming the file) for a file
    that is unreadable or needs a global DeepSpeed's files do not."""
    checkpoint_dir = Path(run_dir) / CHECKPOINT_DIR
    tag = read_latest(checkpoint_dir)
    if tag is None:
        raise FileNotFoundError(f"{run_dir} has no DeepSpeed checkpoint (no {checkpoint_dir / 'latest'})")
    check_tag(checkpoint_dir / tag)
    meta = read_json(checkpoint_dir / tag / META_FILE) or {}
    if meta.get("zero_stage", 0) == 0:  # every rank held whole fp32 tensors: the module state is exact
        module = load_deepspeed_file(checkpoint_dir / tag / MODEL_STATES_FILE)["module"]
        return {name: tensor.float() for name, tensor in module.items()}
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    return get_fp32_state_dict_from_zero_checkpoint(str(checkpoint_dir), tag=tag)

"""Running a training suite under DeepSpeed: any launcher (deepspeed, torchrun), any world size.

    deepspeed --num_gpus 8 --module nightbench.suites.cli run --suite bert_mlm --preset paper \\
        --optimizer nigt --deepspeed --zero-stage 2 --precision bf16

The global batch stays the suite's (micro-batch x accumulation x world size), the optimizer is
the registry's, and a 2-process run takes the steps a 1-process run takes (tests/suites/
distributed/test_host.py). What cannot be exact is refused before training (support.py).

ds_config     the DeepSpeed config from the suite's batch sizes and the CLI (or a user's JSON)
support       which optimizer x ZeRO stage x precision combinations are exact; refusals
launch        joining the process group the launcher set up (or a group of one)
zero_pieces   ZeRO 1/2: per-layer pieces of DeepSpeed's flat partitions for the client optimizer
host          the engine's Host for a rank: rank 0 owns the run directory; failures of all ranks;
              the Trainer's backward, step and sum over ranks through a DeepSpeed engine
checkpoints   a run's DeepSpeed checkpoints (per-rank files, meta, 'latest'); whether one can resume
weights       the fp32 weights in a run's DeepSpeed checkpoint
"""

from . import host  # noqa: F401 - registers the DeepSpeed host with the engine
from .ds_config import DeepSpeedOptions

__all__ = ["DeepSpeedOptions"]

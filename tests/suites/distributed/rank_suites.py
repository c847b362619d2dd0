"""Toy suites that misbehave on rank 1 only, for the failure-reporting tests (modules
toy_rank_failure.py and toy_rank_data.py expose them to the catalog as SUITE).

toy_rank_failure  rank 1 raises at its third batch (a crash during training)
toy_rank_data     rank 1 builds other batches (as a node with its own corpus cache would)
"""

from __future__ import annotations

from tests.suites.toy_suite import ToySuite

FAILING_STEP = 2


class RankOneFails(ToySuite):
    name = "toy_rank_failure"

    def build(self, ctx):
        task = super().build(ctx)
        batches = task.train_batches

        def train_batches(start_step: int):
            for step, batch in enumerate(batches(start_step), start_step):
                if ctx.rank == 1 and step == FAILING_STEP:
                    raise RuntimeError(f"rank 1 fails on purpose at step {step}")
                yield batch

        task.train_batches = train_batches
        return task


class RankOneHasOtherData(ToySuite):
    name = "toy_rank_data"

    def build(self, ctx):
        task = super().build(ctx)
        batches = task.train_batches

        def train_batches(start_step: int):
            for batch in batches(start_step):
                yield {**batch, "y": batch["y"] + ctx.rank}

        task.train_batches = train_batches
        return task

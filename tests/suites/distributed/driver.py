"""Runs several DeepSpeed runs in ONE launch (each launch costs seconds of start-up on CPU).

    torchrun --standalone --nproc_per_node 2 -m tests.suites.distributed.driver plan.json

plan.json: {"runs": [{"suite", "optimizer", "zero_stage", "results", "overrides", "deepspeed_config"?}],
"report": path}.
Every run goes through the engine's own entry point (execute_run with DeepSpeed options), as
`nightbench run --deepspeed` does; rank 0 writes the outcomes to "report" after each run. A refused
run (ConfigError, raised alike on every rank) is recorded as "refused". A run of the suite
'toy_rank_failure' stops rank 1 with an error, so it must come last in a plan.
"""

import json
import os
import sys

from nightbench.suites import catalog
from nightbench.suites.config import ConfigError
from nightbench.suites.distributed import DeepSpeedOptions
from nightbench.suites.engine import RunRequest, execute_run


catalog.CATALOG.entries["toy"] = "tests.suites.toy_suite"
catalog.CATALOG.entries["toy_rank_failure"] = "tests.suites.distributed.toy_rank_failure"
catalog.CATALOG.entries["toy_rank_data"] = "tests.suites.distributed.toy_rank_data"


def main(plan_path: str) -> int:
    plan = json.loads(open(plan_path).read())
    outcomes = []
    for run in plan["runs"]:
        try:
            outcome = execute_run(RunRequest(
                suite=run["suite"], optimizer=run["optimizer"], preset="ci", overrides=run.get("overrides", {}),
                results_root=run["results"], progress=False, device="cpu",
                deepspeed=DeepSpeedOptions(zero_stage=run["zero_stage"], config_path=run.get("deepspeed_config"))))
        except ConfigError as exc:
            outcomes.append({**run, "status": "refused", "error": str(exc)})
            continue
        outcomes.append({**run, "status": outcome.status, "run_dir": str(outcome.run_dir),
                         "error": outcome.summary.get("error"),
                         "step_time_median": outcome.summary.get("step_time_median")})
        if os.environ.get("RANK", "0") == "0":
            with open(plan["report"], "w") as f:
                json.dump(outcomes, f, indent=2)
    return 0 if all(o["status"] in ("completed", "refused") for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

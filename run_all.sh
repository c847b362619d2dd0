#!/usr/bin/env bash
# The full leaderboard: every suite x the paper's eight optimizers (and any plugin you load) x 2 seeds at the default preset
# ('small', which a laptop CPU finishes), then the HTML comparison report. Finished runs are
# skipped, so an interrupted board resumes where it stopped. Arguments pass through, e.g.
#   ./run_all.sh --preset ci               # a few minutes
#   ./run_all.sh --tune                    # equal-budget search per optimizer, best rerun with 3 seeds
#   ./run_all.sh --optimizers modern nigt  # the 2026 baselines beside NIGT
#   ./run_all.sh --optimizer-file my_opt.py
#   ./run_all.sh --suites bert_mlm --optimizers nigt adam --jobs 2
# Run from any folder: paths (--results, default ./results; --optimizer-file) are the caller's.
set -euo pipefail
if ! command -v nightbench >/dev/null 2>&1; then
  echo "run_all.sh: the 'nightbench' command is not installed; install first:" >&2
  echo "  python3 -m venv .venv && . .venv/bin/activate && pip install -e ." >&2
  exit 2
fi
exec nightbench leaderboard "$@"

#!/usr/bin/env bash
# The project's own quality-vs-ratio regression gate (called by .ci/run after the tests).
#
#   bash reports/ci_gate.sh            # sweep into runs/ci-gate, then gate it against the baseline
#   bash reports/ci_gate.sh --write    # sweep, then (re)write the committed baseline from it
#
# The sweep is small on purpose (tiny-dit, TMP and random at 25% and 50%, 24 shapes-t2i prompts of
# the test split, 8 sampler steps, no recovery, T2I-only calibration from the calib split: a few
# minutes on 2 cores). The baseline must come from the same split (its suite hash carries it). Seeds, calibration and the suite subset
# are fixed, so an unchanged tree reproduces the baseline's per-prompt results; the gate fails
# (exit 1, with a table) when GenEval correctness at any ratio drops significantly (McNemar).
set -euo pipefail
cd "$(dirname "$0")/.."
BASELINE=reports/tiny-dit-shapes-ci.json
OUT=${TMPBENCH_CI_GATE_OUT:-runs/ci-gate}
tmpbench sweep --model tiny-dit --suite shapes-t2i --pruners tmp,random --budgets 25%,50% \
  --limit 24 --split test --steps 8 --recover-steps 0 --calibration-mix t2i=1 --out "$OUT" --quiet
if [[ "${1:-}" == "--write" ]]; then
  tmpbench gate --write-baseline --split test --baseline "$BASELINE" --run "$OUT"
else
  tmpbench gate --split test --baseline "$BASELINE" --run "$OUT"
fi

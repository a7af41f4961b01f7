#!/usr/bin/env bash
# One arm of the connect-four self-play ablations: train for MINUTES of wall clock on
# one thread, then measure the network's mistake rate on the first PER_SET positions of
# each Pons set at 200 simulations. Every arm changes one thing against "base" (the
# shipped agent's settings), so its effect on the benchmark is measured, not assumed.
#
#   bash benchmarks/connect_four_ablations.sh ARM [MINUTES=20] [SEED=0] [PER_SET=200]
#
# Arms: base, playoutcap, openings, bignet, puct, puct-fpu-forced, train32.
# Two arms at once fill two cores. Each writes runs/ablations/<arm>-s<seed>/ with the
# run folder, train.log and pons.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

ARM=${1:?usage: connect_four_ablations.sh ARM [MINUTES] [SEED] [PER_SET]}
MINUTES=${2:-20}
SEED=${3:-0}
PER_SET=${4:-200}

case "$ARM" in
  base) extra=() ;;
  # 25% of moves get the full 64-simulation search and are recorded, the rest a fast
  # 16-simulation search (mean 28 simulations a move, against base's 32)
  playoutcap) extra=(--num-simulations 64 --fast-simulations 16 --full-search-prob 0.25) ;;
  openings) extra=(--opening-plies 6) ;;
  bignet) extra=(--num-blocks 6 --channels 64) ;;
  puct) extra=(--root-policy PUCT) ;;
  puct-fpu-forced) extra=(--root-policy PUCT --fpu-reduction 0.2 --forced-playouts 2) ;;
  # twice the gradient steps on the same self-play (each position sampled ~4 times, not 2)
  train32) extra=(--train-steps-per-iteration 32) ;;
  *) echo "unknown arm $ARM" >&2; exit 2 ;;
esac

out=runs/ablations/$ARM-s$SEED
if compgen -G "$out/alphazero-*" >/dev/null; then
  echo "$out already holds a run: remove it to start again" >&2
  exit 2
fi
mkdir -p "$out"
.venv/bin/mbrl train alphazero --threads 1 --game connect_four --seed "$SEED" \
  --run-dir "$out" --max-minutes "$MINUTES" --num-iterations 100000 \
  --num-parallel-games 256 --moves-per-iteration 8 --num-simulations 32 \
  --train-steps-per-iteration 16 --replay-size 200000 \
  --eval-every 50 --eval-games 10 --eval-opponents random "${extra[@]}" \
  >"$out/train.log" 2>&1
run=$(compgen -G "$out/alphazero-*" | head -1)
OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/mbrl eval connect_four \
  --players "agent:$run@200" --benchmark pons --per-set "$PER_SET" | tee "$out/pons.txt"

#!/usr/bin/env bash
# One node, 4 GPUs (the papers' setup: 4 x A100, 8 images per GPU = global batch 32).
#
#   train/launch_1node_4gpu.sh CONFIG OUT [more `dramnet-edge train` options, e.g. --set data.root=/data/GoPro]
#
# torchrun restarts the workers up to MAX_RESTARTS times after a failure; a restarted run sees
# TORCHELASTIC_RESTART_COUNT > 0 and resumes from OUT/ckpt/last.pt by itself. `--resume auto` also makes
# re-running this script (e.g. after a preempted job) continue the run in OUT instead of refusing.
# Environment: NPROC (GPUs, default 4), MAX_RESTARTS (default 3), OMP_NUM_THREADS (default 4).
set -euo pipefail
if [[ $# -lt 2 ]]; then
    echo "usage: $0 CONFIG OUT [dramnet-edge train options...]" >&2
    exit 2
fi
config="$1"; out="$2"; shift 2
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"
exec torchrun --standalone --nproc_per_node="${NPROC:-4}" --max-restarts="${MAX_RESTARTS:-3}" \
    --no-python dramnet-edge train --config "$config" --out "$out" --resume auto "$@"

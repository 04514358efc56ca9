#!/usr/bin/env bash
# Several nodes: run this same command on every node (e.g. one srun task per node).
#
#   NNODES=2 RDZV_HOST=node001 train/launch_multinode.sh CONFIG OUT [dramnet-edge train options...]
#
# Rendezvous is torchrun's c10d backend at RDZV_HOST:RDZV_PORT (any one of the nodes; no separate store).
# The global batch is data.batch_size x NNODES x NPROC_PER_NODE: halve data.batch_size when doubling the
# GPUs to keep the paper's 32 (e.g. --set data.batch_size=4 on 2 nodes x 4 GPUs).
# OUT must be on storage every node can read (checkpoints are written by rank 0 and read by all ranks on
# resume). Workers that fail are restarted up to MAX_RESTARTS times and resume from OUT/ckpt/last.pt.
# Environment: NNODES (required; or MIN:MAX for elastic), RDZV_HOST (required), RDZV_PORT (29400),
# RDZV_ID (job id shared by all nodes; SLURM_JOB_ID when set), NPROC_PER_NODE (4), MAX_RESTARTS (3).
set -euo pipefail
if [[ $# -lt 2 ]]; then
    echo "usage: NNODES=N RDZV_HOST=host $0 CONFIG OUT [dramnet-edge train options...]" >&2
    exit 2
fi
: "${NNODES:?set NNODES to the number of nodes}"
: "${RDZV_HOST:?set RDZV_HOST to a host every node can reach (e.g. the first node)}"
config="$1"; out="$2"; shift 2
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"
exec torchrun --nnodes="$NNODES" --nproc_per_node="${NPROC_PER_NODE:-4}" \
    --rdzv-backend c10d --rdzv-endpoint "${RDZV_HOST}:${RDZV_PORT:-29400}" \
    --rdzv-id "${RDZV_ID:-${SLURM_JOB_ID:-dramnet-edge}}" --max-restarts="${MAX_RESTARTS:-3}" \
    --no-python dramnet-edge train --config "$config" --out "$out" --resume auto "$@"

#!/usr/bin/env bash
# One command on the Jetson: FP16 and INT8 engines built with the TensorRT installed there (dramnet-edge export, and
# trtexec where present, for comparison), PSNR against the FP32 reference, bench with module power. One report.
#
#   benchmarks/jetson_check.sh CHECKPOINT [OUT_DIR]        (run from a dramnet-edge checkout, in its venv)
#
# Environment: CALIB_DATA=photos/ (INT8 calibration images; default: the embedded synthetic set), REPEAT=5,
# SKIP_TRTEXEC=1, NO_SUDO=1 (bench without sudo: no tegrastats power, no jetson_clocks record).
# Written against JetPack 6 (TensorRT 10.3) and TensorRT >= 10.12 (strongly typed; trtexec --stronglyTyped).
# It has NOT been run on a Jetson yet (docs/jetson.md says what is verified where).
set -u -o pipefail

CKPT=${1:?usage: benchmarks/jetson_check.sh CHECKPOINT [OUT_DIR]}
OUT=${2:-jetson-check-$(date +%Y%m%d-%H%M%S)}
REPEAT=${REPEAT:-5}
PROFILE=export/jetson-orin-int8.yaml
mkdir -p "$OUT"
LOG="$OUT/log.txt"
REPORT="$OUT/report.md"
: > "$LOG"
say() { echo "$*" | tee -a "$LOG"; }
run() { say "\$ $*"; "$@" >> "$LOG" 2>&1; local rc=$?; [ $rc -eq 0 ] || say "  -> exit code $rc"; return $rc; }

say "== device"
python - >> "$LOG" 2>&1 <<'EOF'
import json, tensorrt, torch
from dramnet_edge.bench.device import device_info
print("tensorrt", tensorrt.__version__, "| torch", torch.__version__, "| cuda", torch.cuda.is_available())
print(json.dumps(device_info().get("jetson"), indent=1))
EOF
TRT_MM=$(python -c "import tensorrt as t; print(''.join(f'{int(p):02d}' for p in t.__version__.split('.')[:2]))" 2>/dev/null)
[ -n "$TRT_MM" ] || { say "TensorRT's Python bindings do not import: sudo apt-get install python3-libnvinfer, and a venv made with --system-site-packages"; exit 2; }

say "== export: engines with the installed TensorRT (+ TensorRT 10.3 conformance + parity vs PyTorch)"
CAL=()
[ -n "${CALIB_DATA:-}" ] && CAL=(--calib-data "$CALIB_DATA")
run dramnet-edge export --profile "$PROFILE" --precision fp16 --checkpoint "$CKPT" -o "$OUT/fp16/dramnet.engine"
run dramnet-edge export --profile "$PROFILE" --checkpoint "$CKPT" "${CAL[@]}" -o "$OUT/int8/dramnet.engine"

TRTEXEC=$(command -v trtexec || ls /usr/src/tensorrt/bin/trtexec 2>/dev/null || true)
if [ -z "${SKIP_TRTEXEC:-}" ] && [ -n "$TRTEXEC" ]; then
  say "== trtexec on the same ONNX (for comparison; timings in $OUT/trtexec-*.txt)"
  for prec in fp16 int8; do
    for g in encoder decoder_full decoder_light gate; do
      onnx="$OUT/$prec/dramnet.$g.onnx"
      [ -f "$onnx" ] || continue
      if [ "$TRT_MM" -ge 1012 ]; then flags=(--stronglyTyped)      # precision from the ONNX itself
      elif [ "$prec" = int8 ] && [ "$g" != gate ]; then flags=(--fp16 --int8)   # Q/DQ graphs
      else flags=(--fp16); fi
      # the dynamic-batch profile the exporter builds: 1 / 8 / 16 tiles (input names from the ONNX)
      shapes=$(python - "$onnx" <<'EOF'
import sys, onnx
m = onnx.load(sys.argv[1], load_external_data=False)
dims = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim][1:] for i in m.graph.input}
print(" ".join(f"--{k}Shapes=" + ",".join(f"{n}:{b}x" + "x".join(map(str, d)) for n, d in dims.items())
               for k, b in (("min", 1), ("opt", 8), ("max", 16))))
EOF
)
      # shellcheck disable=SC2086
      run "$TRTEXEC" --onnx="$onnx" "${flags[@]}" $shapes --saveEngine="$OUT/$prec/trtexec.$g.engine" \
          --timingCacheFile="$OUT/trtexec.timing.cache" > "$OUT/trtexec-$prec-$g.txt" 2>&1 \
          || say "  trtexec failed on $onnx (see $OUT/trtexec-$prec-$g.txt)"
    done
  done
else
  say "== trtexec skipped (${SKIP_TRTEXEC:+SKIP_TRTEXEC set}${TRTEXEC:-not found})"
fi

say "== photos (left half sharp, right half blurred; held out from training)"
python -c "from dramnet_edge.bench.photos import write_half_sharp_set; write_half_sharp_set('$OUT/photos')" >> "$LOG" 2>&1

say "== validate: PSNR vs ground truth and vs the FP32 PyTorch model"
ARTS=()
for prec in fp16 int8; do [ -f "$OUT/$prec/dramnet.engine.json" ] && ARTS+=("$OUT/$prec/dramnet.engine"); done
[ ${#ARTS[@]} -gt 0 ] || { say "no engine was built; see $LOG"; exit 1; }
dramnet-edge validate "${ARTS[@]}" "$CKPT" --data "$OUT/photos" --device cuda --json > "$OUT/validate.json" 2>> "$LOG" \
  || say "  validate failed (see $LOG)"

say "== bench: latency, memory (TensorRT's own too), module power"
SUDO=(sudo -E env "PATH=$PATH")
[ -n "${NO_SUDO:-}" ] && SUDO=()
run "${SUDO[@]}" dramnet-edge bench "${ARTS[@]}" --checkpoint "$CKPT" --images "$OUT/photos/blur" \
    --targets "$OUT/photos/sharp" --tau none,0.2:0.8 --device cuda --warmup 2 --repeat "$REPEAT" \
    --json "$OUT/bench.json" --markdown "$OUT/bench.md"

python - "$OUT" > "$REPORT" 2>> "$LOG" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print(f"# Jetson check: {out.name}\n")
for prec in ("fp16", "int8"):
    side = out / prec / "dramnet.engine.json"
    if not side.is_file():
        print(f"- {prec}: no engine (see log.txt)")
        continue
    s = json.loads(side.read_text())
    p, b = s.get("parity") or {}, s.get("tensorrt_build") or {}
    conf = {g: len(c["problems"]) for g, c in (s.get("tensorrt_conformance") or {}).items()}
    print(f"- {prec}: TensorRT {b.get('tensorrt')}, {b.get('typing')}; parity worst "
          f"{min(p[g]['psnr_db_min'] for g in ('model', 'full', 'light')) if p.get('model') else 'n/a'} dB "
          f"(ok: {p.get('ok')}); conformance problems {conf}")
    q = s.get("quantization")
    if q:
        print(f"  INT8 drop vs FP32 (held out): {q.get('drop_db_mean')} dB mean, {q.get('drop_db_worst')} worst")
for f in sorted(out.glob("trtexec-*.txt")):
    lines = [l.strip() for l in f.read_text(errors="ignore").splitlines() if "Throughput:" in l or "GPU Compute Time:" in l]
    print(f"- {f.stem}: " + ("; ".join(lines[:2]) if lines else "no timing (see the file)"))
v = out / "validate.json"
if v.is_file() and v.stat().st_size:
    print("\n## validate\n\n```\n" + v.read_text()[:4000] + "\n```")
bm = out / "bench.md"
if bm.is_file():
    print("\n## bench\n\n" + bm.read_text())
EOF
say "== report: $REPORT (log: $LOG)"

#!/usr/bin/env bash
# GPU check of the fused RL ops, for a lent H100/H200 (Python 3.12, CUDA torch, nvcc, cmake, ninja, pybind11,
# pytest and hypothesis preinstalled; no internet, no mujoco). Run from anywhere in the repo:
#
#   bash bench/gpu_check.sh          (with the mujoco 3.3.0 cp312 wheel in .whl/, carried along)
#
# Steps, each logged to $OUT/<step>.log with a one-line verdict on stdout (about 4-6 minutes in all):
#   build     the core with CUDA kernels for sm_90 (CMake + ninja), placed in ript_fast/ in place
#   tests     every ops test, the CUDA ones included (-m "cuda or not cuda")
#   bench     bench/bench_ops.py --device cuda (table also in $OUT/bench_cuda.md), at most 240 s
#   sanitize  each CUDA op once (masks, half precision, a bad token) under compute-sanitizer memcheck, <= 150 s
# Without a GPU (a dry run on a CPU machine) the build and the CPU tests still run; the rest is skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/ript_gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
# mujoco's import picks an OpenGL backend and fails without the glfw package (absent there); nothing here renders
export MUJOCO_GL=${MUJOCO_GL:-disable}

if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
elif ! python3 -c "import mujoco" 2>/dev/null; then
  echo "no mujoco: put the mujoco 3.3.0 cp312 wheel in .whl/ (the build reads its headers)" >&2
  exit 1
fi

failed=0
step() {  # step NAME COMMAND...: runs it with its output in $OUT/NAME.log, prints rc, time and the log's tail
  local name=$1 start=$SECONDS rc
  shift
  "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  echo "=== $name: rc=$rc in $((SECONDS - start)) s"
  tail -n 25 "$OUT/$name.log"
  [ "$rc" -eq 0 ] || failed=1
  return "$rc"
}

build() {
  local dir=/tmp/ript_fast_build
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRIPT_FAST_CUDA=ON -DRIPT_FAST_CUDA_ARCHS=90 \
    -DPython_EXECUTABLE="$(command -v python3)" -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" &&
    cmake --build "$dir" -j "$(nproc)" &&
    cp "$dir"/_C*.so ript_fast/
}

info() {
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch, ript_fast._core as c; print('torch', torch.__version__, 'cuda_compiled', \
c._C.cuda_compiled, 'devices', c._C.cuda_device_count(), torch.cuda.get_device_name())"
}

sanitize() {  # at most 150 s: the sanitizer slows everything it runs, torch's start-up included
  cat >/tmp/ript_sanitize.py <<'EOF'
import torch
from ript_fast import ops

dev = "cuda"
for dtype in (torch.float32, torch.bfloat16, torch.float64):
    for b, t, v in ((3, 5, 7), (2, 3, 2049)):
        logits = torch.randn(b, t, v, device=dev, dtype=dtype, requires_grad=True)
        tokens = torch.randint(0, v, (b, t), device=dev)
        mask = torch.rand(b, t, device=dev) > 0.3
        ops.categorical_logprob(logits, tokens, mask, 0.7).sum().backward()
        for old in (torch.randn(b, device=dev), torch.randn(b, t, device=dev)):
            ops.categorical_ppo_loss(logits, tokens, old, torch.randn(b, device=dev), mask, return_stats=True)[0].backward()
    mean = torch.randn(4, 8, 7, device=dev, dtype=dtype, requires_grad=True)
    scale = torch.zeros(7, device=dev, dtype=dtype, requires_grad=True)
    for op in (ops.gaussian_logprob, ops.laplace_logprob):
        op(mean, scale, torch.randn(4, 8, 7, device=dev, dtype=dtype), torch.rand(4, 8, device=dev) > 0.5).sum().backward()
    logp = torch.randn(6, 9, device=dev, dtype=dtype, requires_grad=True)
    ops.ppo_clip_loss(logp, torch.randn(6, 9, device=dev), torch.randn(6, device=dev), mask=torch.rand(6, 9, device=dev)).backward()
tokens = torch.zeros(2, 3, dtype=torch.int64, device=dev)
tokens[1, 2] = 7
try:
    ops.categorical_logprob(torch.randn(2, 3, 7, device=dev), tokens)
    raise SystemExit("an out-of-range token did not raise")
except IndexError as err:
    print("bad token raised:", err)
torch.cuda.synchronize()
print("sanitize: every CUDA op ran")
EOF
  timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 python3 /tmp/ript_sanitize.py
}

step build build || exit 1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if nvidia-smi >/dev/null 2>&1; then
  step info info
  step tests python3 -m pytest python_tests/test_ops_*.py -m "cuda or not cuda" -q -p no:cacheprovider -rs
  step bench timeout 240 python3 bench/bench_ops.py --device cuda --markdown "$OUT/bench_cuda.md"
  step sanitize sanitize
else
  echo "no GPU: running the CPU tests only"
  step tests python3 -m pytest python_tests/test_ops_*.py -q -p no:cacheprovider
fi
exit "$failed"

#!/usr/bin/env bash
# Everything that needs a GPU, in one go, for the day a machine with CUDA is at hand (none has been here so far):
#
#   bash benchmarks/gpu_check.sh [RESULTS]      # RESULTS: folder for the results (default: gpu-check)
#
# 1. machine.txt: nvidia-smi and torch's view of the GPU;
# 2. tests.txt: every test marked gpu (tests/test_gpu.py, each computation on CUDA against the CPU, and the
#    torch-cuda runs of tests/test_backends.py);
# 3. bench_network.json (+ .txt): the torch backend on CUDA, hub wiring at the released size and the bundled
#    model's (benchmarks/bench_network.py; BENCHMARKS.md compares it with Numba on the CPU);
# 4. demo.txt and demo/: `bdh-graph demo --device cuda` on the bundled model.
# Each step has a time limit (the seconds below; about 8 minutes in all) and a failing step does not stop the next;
# the script's exit status is the number of failed steps. PYTHON (default python3) is an interpreter with torch for
# CUDA. The package runs from this checkout (PYTHONPATH), so only its dependencies need installing; on a machine
# that cannot reach a package index, put wheels of the missing ones (the script names them) in .whl/.
# DEVICE=cpu runs the same steps on the CPU (BDH_GPU_TEST_DEVICE=cpu for the tests): a dry run of this script.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-gpu-check}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
mkdir -p "$RESULTS"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 BDH_GPU_TEST_DEVICE=$DEVICE
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --target /tmp/gpu-check-site .whl/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/gpu-check-site"
fi
missing=$("$PYTHON" -c "
import importlib.util as u
print(' '.join(m for m in ('torch', 'numpy', 'scipy', 'networkx', 'numba', 'matplotlib', 'tqdm', 'safetensors',
                           'powerlaw', 'pytest') if u.find_spec(m) is None))")
if [ -n "$missing" ]; then
  echo "missing Python packages: $missing (pip install them, or put their wheels in .whl/)" | tee "$RESULTS/missing.txt"
  exit 1
fi

failed=0
step() {  # step NAME SECONDS COMMAND...: run with a time limit, output to RESULTS/NAME.txt
  local name=$1 limit=$2
  shift 2
  echo "== $name: $*"
  timeout "$limit" "$@" 2>&1 | tee "$RESULTS/$name.txt"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || { echo "== $name failed (exit $rc; 124: over its $limit s)"; failed=$((failed + 1)); }
}
step machine 30 "$PYTHON" -c "import subprocess, sys, torch
print(subprocess.run(['nvidia-smi'], capture_output=True, text=True).stdout if torch.cuda.is_available() else '')
print(sys.version, 'torch', torch.__version__,
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA')"
step tests 300 "$PYTHON" -m pytest -q -m gpu -rs tests/test_gpu.py tests/test_backends.py
step bench_network 150 "$PYTHON" benchmarks/bench_network.py --backend torch --device "$DEVICE" --cases hub bundled \
  --tokens 20 --warmup 3 --json "$RESULTS/bench_network.json"
step demo 120 "$PYTHON" -m bdh_graph.cli demo --device "$DEVICE" --out "$RESULTS/demo"
echo "== $failed step(s) failed; results in $RESULTS/"
exit "$failed"

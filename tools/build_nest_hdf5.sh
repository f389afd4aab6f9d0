#!/usr/bin/env bash
# Build NEST with HDF5 (so that nest.SonataNetwork can read BDH's SONATA circuits) into a Python environment.
#
#   bash tools/build_nest_hdf5.sh [PYTHON]        # PYTHON: that environment's interpreter (default: python3)
#
# Why: the nest-simulator wheel on PyPI is built without HDF5, and SonataNetwork then cannot connect a circuit.
# This builds NEST's source package against the system HDF5 (Debian's libhdf5-dev), and builds h5py from source
# against the same HDF5: NEST's SONATA reader imports h5py, and the h5py wheel carries its own HDF5, whose symbols
# clash with the one NEST links ("Not a datatype") whenever nest is imported before h5py.
# NEST_MODELS: the neuron, device and synapse models built, a ;-separated list (default: those a BDH circuit, its
# input drive (SonataNetwork makes spike_train_injectors of the inputs) and its recordings need), or "full" for
# all of NEST's (about 140 files more to compile: 16 minutes in all on 2 idle cores; the default took 12 to 22
# minutes on one busy core). JOBS (default 1) sets the parallel compile jobs, so a machine's other work keeps a core.
# h5py is rebuilt only if it carries its own HDF5 (its wheel's h5py.libs folder).
# Run it before `pip install -e ".[test]"` in that environment: the test extra then finds NEST and h5py installed
# and keeps them (installing it first would put the wheels in, which this script then replaces).
set -euo pipefail
PYTHON=${1:-python3}
JOBS=${JOBS:-1}
NEST_VERSION=${NEST_VERSION:-3.10}
BDH_MODELS="iaf_psc_delta;static_synapse;spike_train_injector;spike_generator;parrot_neuron;spike_recorder"
NEST_MODELS=${NEST_MODELS:-"$BDH_MODELS;multimeter;dc_generator;poisson_generator"}
BUILD_DIR=${BUILD_DIR:-$HOME/.cache/bdh-graph/nest-build}  # kept: a rebuild (other models) compiles what changed
if [ "$NEST_MODELS" = full ]; then models=(--config-settings=cmake.define.with-modelset=full)
else models=("--config-settings=cmake.define.with-models=$NEST_MODELS"); fi
HDF5_DIR=/usr/lib/x86_64-linux-gnu/hdf5/serial

if [ "$(id -u)" = 0 ]; then
  apt-get update -q && apt-get install -y -q libhdf5-dev cmake libgsl-dev libltdl-dev pkg-config
else
  echo "not root: make sure libhdf5-dev cmake libgsl-dev libltdl-dev pkg-config are installed" >&2
fi

export CMAKE_BUILD_PARALLEL_LEVEL=$JOBS MAKEFLAGS=-j$JOBS
start=$(date +%s)
"$PYTHON" -m pip install -q numpy cython pkgconfig
if ! "$PYTHON" -c "import h5py, pathlib, sys
sys.exit(any(pathlib.Path(h5py.__file__).parents[1].glob('h5py.libs')))" 2>/dev/null; then
  HDF5_DIR=$HDF5_DIR "$PYTHON" -m pip install --no-binary h5py --force-reinstall --no-deps "h5py>=3.8"
fi
# a NEST already installed would be kept, and without --no-cache-dir a cached wheel (of other models) reused
"$PYTHON" -m pip uninstall -y -q nest-simulator 2>/dev/null || true
"$PYTHON" -m pip install --no-cache-dir --no-binary nest-simulator --config-settings=build-dir="$BUILD_DIR" \
  --config-settings=cmake.define.with-hdf5=ON "${models[@]}" \
  "nest-simulator==$NEST_VERSION.*"
echo "built in $(( $(date +%s) - start )) s"

# nest first, then h5py: the order that fails with h5py's wheel
"$PYTHON" - <<'EOF'
import nest, h5py
assert nest.build_info["have_hdf5"], "NEST was built without HDF5"
assert h5py.version.hdf5_version, h5py.version.info
print(f"NEST {nest.__version__} with HDF5; h5py {h5py.__version__} on HDF5 {h5py.version.hdf5_version}")
EOF

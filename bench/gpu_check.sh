#!/usr/bin/env bash
# GPU readiness check (docs/gpu-check.md): installs vosc with the README's install command, then runs
# bench/gpu_check.py. Usage, from anywhere:
#   bash bench/gpu_check.sh [gpu_check.py options]          e.g. --json gpu_check.json --reference /tmp/aotref
#   VOSC_SKIP_INSTALL=1 bash bench/gpu_check.sh ...         environment already installed
# V100 (sm_70): install the CUDA 12.6 torch build first (docs/getting-started.md "Install"); pip then keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${VOSC_SKIP_INSTALL:-0}" != "1" ]]; then
  pip install -e '.[dev]'
fi
python -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'available', torch.cuda.is_available())"
exec python bench/gpu_check.py "$@"

#!/usr/bin/env bash
# Builds the native tfjs kernels (libs/lm/native → libs/lm/native/build/Release/cprec_kernels.node)
# against Debian's libopenblas-dev. Offline-safe: node-gyp uses the installed Node headers
# (--nodedir=/usr) instead of downloading them. A failed build is not fatal: the LM library then
# runs on the pure-JS tfjs kernels, and `registerNativeKernels()` reports why.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/libs/lm/native" || exit 0
nodedir="${CPREC_NODEDIR:-/usr}"
if [ ! -f /usr/include/x86_64-linux-gnu/cblas.h ] && [ ! -f /usr/include/cblas.h ]; then
  echo "warning: cblas.h not found (apt-get install libopenblas-dev); native kernels not built, using JS kernels" >&2
  exit 0
fi
if npx --no-install node-gyp rebuild --nodedir="$nodedir" -j 2; then
  echo "native kernels built: $root/libs/lm/native/build/Release/cprec_kernels.node"
else
  echo "warning: native kernel build failed; the LM library will use the JS tfjs kernels" >&2
fi
exit 0

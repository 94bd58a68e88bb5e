#!/usr/bin/env bash
# Everything a fresh machine needs before cprec runs: npm packages, OS packages and Kafka jars
# (infra/local/install), and the native tfjs kernels. Idempotent and quick when nothing changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$node_major" -lt 20 ]; then
  echo "cprec needs Node.js 20 or newer (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# npm ci only when the lock file changed since the last install: it wipes node_modules.
stamp="node_modules/.cprec-lock.sha256"
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> npm ci"
  npm ci --no-audit --no-fund
  echo "$want" > "$stamp"
fi

bash infra/local/install

if [ -f scripts/build-native.sh ]; then
  bash scripts/build-native.sh
fi

# @tensorflow/tfjs-node (the 'tensorflow' backend) from TensorFlow's PyPI wheel; never fatal outside CI.
bash scripts/install-tfjs-node.sh --optional

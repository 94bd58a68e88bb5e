#!/usr/bin/env bash
# Installs @tensorflow/tfjs-node (the `tensorflow` tfjs backend) without the host its own install
# script downloads libtensorflow from (storage.googleapis.com, unreachable on these machines):
#
#   1. the TensorFlow C API comes from TensorFlow's PyPI wheel (pinned file, sha256-checked,
#      downloaded with pip — or PyPI's JSON API + curl when pip is absent — and cached);
#   2. the npm package is added with `npm install --no-save --ignore-scripts` (never a package.json
#      dependency: `npm ci` would run tfjs-node's install script, which needs that other host);
#   3. the wheel's libtensorflow_cc.so.2 + libtensorflow_framework.so.2 and the C headers are laid
#      out as the package's deps/{lib,include}, and the addon is built from source with node-gyp
#      against the local Node headers (--nodedir=/usr), then cached;
#   4. a child node process loads it and checks `tf.getBackend() === 'tensorflow'`.
#
# Usage: scripts/install-tfjs-node.sh [--gpu] [--optional] [--force] [--remove]
#   --gpu       also install @tensorflow/tfjs-node-gpu from the GPU wheel (infra/gpu/install adds
#               the CUDA wheels; this flag alone gives a GPU build that runs on the CPU)
#   --optional  on failure print why and exit 0 (bootstrap uses it), except when CI=true
#   --force     rebuild even when the install stamp says everything is in place
#   --remove    remove the packages from node_modules (the download/build cache stays)
# Env: CPREC_TFJS_NODE=off skips the whole step; CPREC_CACHE_DIR (default ~/.cache/cprec) holds
#      the wheels, the extracted libraries and built addons; CPREC_NODEDIR (default /usr).
# Idempotent: when the stamp in the package matches the pinned versions it returns in well under
# a second. A GPU install, once requested, is kept by later runs without --gpu.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# ---- pins ------------------------------------------------------------------------------------------
TFJS_NODE_VERSION=4.22.0
TF_VERSION=2.18.1
# The C libraries in a wheel do not depend on its Python tag; cp311 is pinned so every machine
# downloads the same file whatever its Python.
WHEEL_TAGS=(--python-version 3.11 --implementation cp --abi cp311 --platform manylinux_2_17_x86_64)
CPU_WHEEL=tensorflow_cpu-2.18.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
CPU_WHEEL_SHA256=810c75d7149d2da0cb2092187817b0dcabb80728ca9f9cf3a61f3f42fadd1298
GPU_WHEEL=tensorflow-2.18.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
GPU_WHEEL_SHA256=c9f87e5d2a680a4595f5dc30daf6bbaec9d4129b46d7ef1b2af63c46ac7d2828
# The addon's loader (@mapbox/node-pre-gyp) looks in lib/napi-v<highest of the package's
# napi_versions the running Node supports>; 8 for tfjs-node 4.22 on Node >= 15.
STAMP_SCHEMA=1

CACHE="${CPREC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cprec}/tfjs-node"
NODEDIR="${CPREC_NODEDIR:-/usr}"
want_gpu=0 optional=0 force=0 remove=0
for a in "$@"; do
  case "$a" in
    --gpu) want_gpu=1 ;;
    --optional) optional=1 ;;
    --force) force=1 ;;
    --remove) remove=1 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "install-tfjs-node: unknown argument $a (see --help)" >&2; exit 2 ;;
  esac
done

log() { echo "==> tfjs-node: $*"; }

fail() {
  echo "install-tfjs-node: $*" >&2
  if (( optional )) && [[ "${CI:-}" != "true" ]]; then
    echo "install-tfjs-node: continuing without @tensorflow/tfjs-node: the 'tensorflow' backend is unavailable," \
      "selectBackend falls back to cpu (re-run: bash scripts/install-tfjs-node.sh)" >&2
    exit 0
  fi
  exit 1
}

if [[ "${CPREC_TFJS_NODE:-}" == "off" ]]; then
  log "skipped (CPREC_TFJS_NODE=off)"
  exit 0
fi

pkg_dir() { echo "$ROOT/node_modules/@tensorflow/$1"; }

if (( remove )); then
  for p in tfjs-node tfjs-node-gpu; do rm -rf "$(pkg_dir "$p")"; done
  rm -f "$CACHE/gpu.requested"
  log "removed @tensorflow/tfjs-node(-gpu) from node_modules (cache kept in $CACHE; npm prune drops their dependencies)"
  exit 0
fi

[[ "$(uname -s)" == "Linux" && "$(uname -m)" == "x86_64" ]] ||
  fail "only Linux x86_64 is pinned (found $(uname -s) $(uname -m)); see docs/backends.md"

mkdir -p "$CACHE"
(( want_gpu )) && touch "$CACHE/gpu.requested"
variants=(cpu)
[[ -f "$CACHE/gpu.requested" ]] && variants+=(gpu)

pkg_of() { [[ "$1" == gpu ]] && echo tfjs-node-gpu || echo tfjs-node; }
wheel_of() { [[ "$1" == gpu ]] && echo "$GPU_WHEEL" || echo "$CPU_WHEEL"; }
sha_of() { [[ "$1" == gpu ]] && echo "$GPU_WHEEL_SHA256" || echo "$CPU_WHEEL_SHA256"; }
project_of() { [[ "$1" == gpu ]] && echo tensorflow || echo tensorflow-cpu; }
node_abi="$(node -p 'process.versions.modules + "-napi" + process.versions.napi')"
fingerprint() {
  echo "schema=$STAMP_SCHEMA tfjs-node=$TFJS_NODE_VERSION wheel=$(sha_of "$1") node-abi=$node_abi"
}
stamp_of() { echo "$(pkg_dir "$(pkg_of "$1")")/.cprec-install"; }

# ---- quick path ------------------------------------------------------------------------------------
all_done=1
for v in "${variants[@]}"; do
  if (( force )) || [[ "$(cat "$(stamp_of "$v")" 2>/dev/null)" != "$(fingerprint "$v")" ]]; then all_done=0; fi
done
if (( all_done )); then
  log "@tensorflow/$(pkg_of cpu)${variants[1]:+ and @tensorflow/$(pkg_of gpu)} $TFJS_NODE_VERSION present (TensorFlow $TF_VERSION C API from PyPI)"
  exit 0
fi

command -v python3 >/dev/null || fail "python3 is needed to fetch and unpack the TensorFlow wheel (apt-get install python3)"

# ---- 1. wheel --------------------------------------------------------------------------------------
fetch_wheel() { # variant -> path of the verified wheel in the cache
  local v="$1" file sha dest tmp
  file="$(wheel_of "$v")"
  sha="$(sha_of "$v")"
  dest="$CACHE/wheels/$file"
  if [[ -f "$dest" ]] && echo "$sha  $dest" | sha256sum -c --status; then
    echo "$dest"
    return
  fi
  mkdir -p "$CACHE/wheels"
  tmp="$(mktemp -d "$CACHE/wheels/.download.XXXXXX")"
  log "downloading $file from PyPI" >&2
  if python3 -m pip --version >/dev/null 2>&1; then
    python3 -m pip download --quiet --no-deps --only-binary=:all: "${WHEEL_TAGS[@]}" -d "$tmp" \
      "$(project_of "$v")==$TF_VERSION" >&2 || { rm -rf "$tmp"; return 1; }
  else
    # No pip (Debian's python3 ships without it): PyPI's JSON API names the file's URL.
    local url
    url="$(curl -fsSL "https://pypi.org/pypi/$(project_of "$v")/$TF_VERSION/json" |
      python3 -c 'import json,sys; f=sys.argv[1]; print(next(u["url"] for u in json.load(sys.stdin)["urls"] if u["filename"]==f))' "$file")" ||
      { rm -rf "$tmp"; return 1; }
    curl -fL --retry 3 -o "$tmp/$file" "$url" >&2 || { rm -rf "$tmp"; return 1; }
  fi
  if [[ ! -f "$tmp/$file" ]]; then
    echo "install-tfjs-node: the download did not produce $file (got: $(ls "$tmp"))" >&2
    rm -rf "$tmp"
    return 1
  fi
  if ! echo "$sha  $tmp/$file" | sha256sum -c --status; then
    echo "install-tfjs-node: sha256 of $file is $(sha256sum "$tmp/$file" | cut -d' ' -f1), expected $sha — refusing it" >&2
    rm -rf "$tmp"
    return 1
  fi
  mv "$tmp/$file" "$dest"
  rm -rf "$tmp"
  echo "$dest"
}

# ---- 2. the C API out of the wheel -----------------------------------------------------------------
unpack_wheel() { # variant wheel -> directory with lib/ and include/
  local v="$1" wheel="$2" dir stage
  dir="$CACHE/$(project_of "$v")-$TF_VERSION-$(sha_of "$v" | cut -c1-12)"
  if [[ -f "$dir/.done" ]]; then
    echo "$dir"
    return
  fi
  log "unpacking the TensorFlow C API from $(basename "$wheel")" >&2
  rm -rf "$dir"
  stage="$(mktemp -d "$CACHE/.unpack.XXXXXX")"
  python3 - "$wheel" "$stage" <<'EOF' >&2 || { rm -rf "$stage"; return 1; }
import os, shutil, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
libs = {'tensorflow/libtensorflow_cc.so.2', 'tensorflow/libtensorflow_framework.so.2'}
# What tfjs-node's binding includes: tensorflow/c/{c_api,eager/c_api}.h and what they include.
inc = ('tensorflow/include/tensorflow/c/', 'tensorflow/include/tensorflow/core/platform/ctstring',
       'tensorflow/include/tsl/platform/ctstring', 'tensorflow/include/xla/tsl/c/')
found = set()
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        name = info.filename
        if name.endswith('/'):
            continue
        if name in libs:
            dest = os.path.join(out, 'lib', os.path.basename(name))
        elif name.startswith(inc):
            dest = os.path.join(out, 'include', name[len('tensorflow/include/'):])
        else:
            continue
        found.add(name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(info) as src, open(dest, 'wb') as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
missing = libs - found
if missing:
    sys.exit('wheel lacks ' + ', '.join(sorted(missing)))
for h in ('tensorflow/c/c_api.h', 'tensorflow/c/eager/c_api.h'):
    if not os.path.isfile(os.path.join(out, 'include', h)):
        sys.exit('wheel lacks the header ' + h)
EOF
  touch "$stage/.done"
  mv "$stage" "$dir"
  echo "$dir"
}

declare -A tfdir
for v in "${variants[@]}"; do
  wheel="$(fetch_wheel "$v")" ||
    fail "could not download $(wheel_of "$v") from PyPI (pip download $(project_of "$v")==$TF_VERSION); is pypi.org reachable?"
  tfdir[$v]="$(unpack_wheel "$v" "$wheel")" || fail "could not unpack $wheel"
done

# ---- 3. the npm packages ---------------------------------------------------------------------------
need_npm=0
for v in "${variants[@]}"; do
  got="$(node -p "require('$(pkg_dir "$(pkg_of "$v")")/package.json').version" 2>/dev/null || true)"
  [[ "$got" == "$TFJS_NODE_VERSION" ]] || need_npm=1
done
if (( need_npm )); then
  specs=()
  for v in "${variants[@]}"; do specs+=("@tensorflow/$(pkg_of "$v")@$TFJS_NODE_VERSION"); done
  log "npm install --no-save --ignore-scripts ${specs[*]}"
  # One command for every variant: npm prunes what a --no-save install does not name.
  npm install --no-save --ignore-scripts --no-audit --no-fund "${specs[@]}" ||
    fail "npm install ${specs[*]} failed (registry.npmjs.org reachable?)"
fi
# Both must resolve tfjs-core to the project's copy, or the backend registers with another engine.
core_of_pkg="$(node -p "require.resolve('@tensorflow/tfjs-core', {paths: [require.resolve('@tensorflow/tfjs', {paths: ['$(pkg_dir tfjs-node)']})]})")"
[[ "$core_of_pkg" == "$ROOT/node_modules/@tensorflow/tfjs-core/"* ]] ||
  fail "@tensorflow/tfjs-node resolves its own @tensorflow/tfjs-core ($core_of_pkg); the project's @tensorflow/tfjs-core must be $TFJS_NODE_VERSION to share one engine"

# ---- 4. deps/ and the addon ------------------------------------------------------------------------
link_or_copy() { ln -f "$1" "$2" 2>/dev/null || cp -f "$1" "$2"; }

build_variant() {
  local v="$1" pkg dir src napi module_path key cached
  pkg="$(pkg_of "$v")"
  dir="$(pkg_dir "$pkg")"
  src="${tfdir[$v]}"
  log "laying out $pkg/deps from $(basename "$src")"
  rm -rf "$dir/deps"
  mkdir -p "$dir/deps/lib"
  link_or_copy "$src/lib/libtensorflow_cc.so.2" "$dir/deps/lib/libtensorflow_cc.so.2"
  link_or_copy "$src/lib/libtensorflow_framework.so.2" "$dir/deps/lib/libtensorflow_framework.so.2"
  # -ltensorflow links against libtensorflow_cc.so.2 (its SONAME is what the addon then needs);
  # libtensorflow.so.2.9.1 is the name tfjs-node's scripts/install.js checks for "already there",
  # so an `npm rebuild` never tries to download.
  ln -sfn libtensorflow_cc.so.2 "$dir/deps/lib/libtensorflow.so"
  ln -sfn libtensorflow_cc.so.2 "$dir/deps/lib/libtensorflow.so.2.9.1"
  ln -sfn libtensorflow_framework.so.2 "$dir/deps/lib/libtensorflow_framework.so"
  cp -r "$src/include" "$dir/deps/include"
  napi="$(cd "$dir" && node -p "require('@mapbox/node-pre-gyp').find('./package.json').match(/napi-v(\\d+)/)[1]")"
  module_path="$dir/lib/napi-v$napi"
  key="$pkg-$TFJS_NODE_VERSION-$(sha_of "$v" | cut -c1-12)-node$node_abi-napi$napi"
  cached="$CACHE/addons/$key/tfjs_binding.node"
  mkdir -p "$module_path"
  if [[ -f "$cached" ]] && (( ! force )); then
    log "addon from cache ($key)"
  else
    [[ -f "$NODEDIR/include/node/node_api.h" ]] ||
      fail "Node headers not found under $NODEDIR/include/node (set CPREC_NODEDIR to the Node install prefix)"
    log "building the $pkg addon from source (node-gyp, a minute or two)"
    (cd "$dir" && "$ROOT/node_modules/.bin/node-gyp" rebuild --nodedir="$NODEDIR" -j 2 -- \
      -Dmodule_name=tfjs_binding -Dmodule_path="$module_path" -Dnapi_build_version="$napi" >"$CACHE/build-$pkg.log" 2>&1) ||
      fail "node-gyp could not build the $pkg addon; see $CACHE/build-$pkg.log (needs build-essential)"
    mkdir -p "$(dirname "$cached")"
    cp -f "$dir/build/Release/tfjs_binding.node" "$cached.tmp"
    mv "$cached.tmp" "$cached"
    rm -rf "$dir/build"
  fi
  cp -f "$cached" "$module_path/tfjs_binding.node"
}

check_variant() { # loads the package in a child process the way selectBackend does
  local v="$1" pkg out
  pkg="$(pkg_of "$v")"
  out="$(TF_CPP_MIN_LOG_LEVEL=2 node -e "
    const tf = require('@tensorflow/tfjs-core');
    require('@tensorflow/$pkg');
    tf.setBackend('tensorflow').then((ok) => {
      const b = tf.backend();
      const x = tf.tensor2d([[1, 2], [3, 4]]);
      const y = tf.matMul(x, x).dataSync();
      if (!ok || tf.getBackend() !== 'tensorflow' || y.join() !== '7,10,15,22') process.exit(3);
      console.log('TensorFlow ' + b.binding.TF_Version + ' via @tensorflow/$pkg ' + tf.version_core);
    });" 2>&1)" || { echo "$out" >&2; return 1; }
  log "$out"
}

for v in "${variants[@]}"; do
  if (( force )) || [[ "$(cat "$(stamp_of "$v")" 2>/dev/null)" != "$(fingerprint "$v")" ]]; then
    build_variant "$v"
    check_variant "$v" || fail "@tensorflow/$(pkg_of "$v") was built but does not load (output above)"
    fingerprint "$v" >"$(stamp_of "$v")"
  fi
done
log "ready: selectBackend('tensorflow')${variants[1]:+ and selectBackend('tensorflow-gpu')}"

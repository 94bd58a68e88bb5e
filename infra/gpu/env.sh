# Source this (`source infra/gpu/env.sh`) before running cprec on the tensorflow-gpu backend.
# libtensorflow's RUNPATH already finds cudart, cuBLAS, cuDNN, cuFFT, cuSOLVER, cuSPARSE and CUPTI in
# deps/nvidia; LD_LIBRARY_PATH adds the rest (nvJitLink, NVRTC, cuRAND, NCCL) and PATH the ptxas
# that TensorFlow uses to compile kernels for GPUs newer than its prebuilt ones.
# TF_FORCE_GPU_ALLOW_GROWTH=true (also selectBackend's default) lets several cprec processes share a
# GPU: TensorFlow otherwise reserves nearly all of its memory for the first.
_cprec_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/../.." && pwd)"
_cprec_nvidia="$_cprec_root/node_modules/@tensorflow/tfjs-node-gpu/deps/nvidia"
if [ -d "$_cprec_nvidia" ]; then
  for _d in "$_cprec_nvidia"/*/lib; do
    case ":${LD_LIBRARY_PATH:-}:" in *":$_d:"*) ;; *) LD_LIBRARY_PATH="$_d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;; esac
  done
  export LD_LIBRARY_PATH
  if [ -d "$_cprec_nvidia/cuda_nvcc/bin" ]; then
    case ":$PATH:" in *":$_cprec_nvidia/cuda_nvcc/bin:"*) ;; *) export PATH="$_cprec_nvidia/cuda_nvcc/bin:$PATH" ;; esac
  fi
else
  echo "infra/gpu/env.sh: $_cprec_nvidia not found (run infra/gpu/install, or use a system CUDA 12 / cuDNN 9)" >&2
fi
export TF_FORCE_GPU_ALLOW_GROWTH="${TF_FORCE_GPU_ALLOW_GROWTH:-true}"
unset _cprec_root _cprec_nvidia _d

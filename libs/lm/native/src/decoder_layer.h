// Inference-only fused LLaMA decoder block (decoder_layer.cc), exported by the addon as
// `decoderLayer`; see libs/lm/src/kernels/decoder-layer.ts for the contract.
#pragma once
#include <napi.h>

namespace cprec {

Napi::Value DecoderLayer(const Napi::CallbackInfo& info);

}  // namespace cprec

// Fused forward/backward kernels of the LoRA training step (training_ops.cc), exported by the addon;
// the contracts (layouts, what is saved, which gradients) are in libs/lm/src/kernels/training-ops.ts.
#pragma once
#include <napi.h>

namespace cprec {

Napi::Value RmsNormForward(const Napi::CallbackInfo& info);
Napi::Value RmsNormBackward(const Napi::CallbackInfo& info);
Napi::Value SwiGluForward(const Napi::CallbackInfo& info);
Napi::Value SwiGluBackward(const Napi::CallbackInfo& info);
Napi::Value RopeForward(const Napi::CallbackInfo& info);
Napi::Value RopeBackward(const Napi::CallbackInfo& info);
Napi::Value CrossEntropyForward(const Napi::CallbackInfo& info);
Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info);
Napi::Value LoraLinearForward(const Napi::CallbackInfo& info);
Napi::Value LoraLinearBackward(const Napi::CallbackInfo& info);
Napi::Value SumSquares(const Napi::CallbackInfo& info);
Napi::Value AdamWUpdate(const Napi::CallbackInfo& info);
Napi::Value AttentionTrainForward(const Napi::CallbackInfo& info);
Napi::Value AttentionTrainBackward(const Napi::CallbackInfo& info);

}  // namespace cprec

{
  "targets": [
    {
      "target_name": "cprec_kernels",
      "sources": ["src/kernels.cc", "src/decoder_layer.cc", "src/training_ops.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "/usr/include/x86_64-linux-gnu"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O3", "-march=x86-64-v2", "-fno-trapping-math", "-fopenmp"],
      "ldflags": ["-fopenmp"],
      "libraries": ["-lopenblas"]
    }
  ]
}

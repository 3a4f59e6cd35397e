{
  "targets": [
    {
      "target_name": "simtrip_onednn",
      "sources": ["native/onednn/addon.cc", "native/onednn/conv.cc", "native/onednn/matmul.cc", "native/onednn/pool.cc", "native/onednn/batch_norm.cc", "native/onednn/group_norm.cc", "native/onednn/eltwise.cc", "native/onednn/sgd.cc", "native/onednn/plan.cc", "native/shared/napi_args.cc"],
      "include_dirs": ["native/onednn", "native/shared"],
      "libraries": ["-ldnnl", "-fopenmp"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-fopenmp"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}

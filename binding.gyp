{
  "targets": [
    {
      "target_name": "simtrip_onednn",
      "sources": ["native/addon.cc", "native/conv.cc", "native/matmul.cc", "native/pool.cc", "native/batch_norm.cc", "native/group_norm.cc", "native/eltwise.cc", "native/sgd.cc"],
      "include_dirs": ["native"],
      "libraries": ["-ldnnl", "-fopenmp"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-fopenmp"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}

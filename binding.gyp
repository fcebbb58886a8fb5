{
  "targets": [
    {
      "target_name": "orthornn",
      "sources": ["<!@(node -p \"require('./native/sources.json').common.join(' ')\")"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-trapping-math", "-ffp-contract=off", "-pthread", "-Wno-unused-parameter"],
      "ldflags": ["-pthread"],
      "libraries": ["-llapacke", "-lopenblas"],
      "conditions": [
        ["OS=='linux'", {"include_dirs": ["/usr/include/x86_64-linux-gnu", "/usr/include/aarch64-linux-gnu", "/usr/include/openblas"]}]
      ]
    }
  ]
}

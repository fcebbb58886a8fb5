#include "backend.h"

namespace orthornn {

std::vector<BackendInfo> listBackends() {
  std::vector<BackendInfo> out;
  out.push_back(cpuBackendInfo());
#ifdef ORTHORNN_WITH_CUDA
  out.push_back(cudaBackendInfo());
#else
  BackendInfo cuda;
  cuda.name = "cuda";
  cuda.compiled = false;
  cuda.available = false;
  cuda.reason = "this build of orthornn was compiled without CUDA";
  out.push_back(cuda);
#endif
  return out;
}

std::shared_ptr<Backend> createBackend(const std::string& name, int deviceIndex) {
  if (name == "cpu") {
    require(deviceIndex == 0, ErrorCode::Range, "device index for 'cpu' must be 0, got " + std::to_string(deviceIndex));
    return createCpuBackend();
  }
  if (name == "cuda") {
#ifdef ORTHORNN_WITH_CUDA
    BackendInfo info = cudaBackendInfo();
    require(info.available, ErrorCode::Device, "the cuda backend is unavailable: " + info.reason);
    require(deviceIndex >= 0 && deviceIndex < info.deviceCount, ErrorCode::Range,
            "cuda device index must be in [0, " + std::to_string(info.deviceCount) + "), got " +
                std::to_string(deviceIndex));
    return createCudaBackend(deviceIndex);
#else
    fail(ErrorCode::Device, "the cuda backend is unavailable: this build of orthornn was compiled without CUDA");
#endif
  }
  fail(ErrorCode::Range, "unknown backend '" + name + "' (expected 'cpu' or 'cuda')");
}

}  // namespace orthornn

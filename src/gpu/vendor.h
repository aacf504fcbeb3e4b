// The one selecting include of the GPU vendor layer: the kernel bodies (src/gpu/pack_kernels.cuh)
// and the host layer (src/gpu/gpu_backend.cu) are written against it, once, for every vendor.
//   vendors/cuda.h  nvcc                      -> the `cuda` backend
//   vendors/hip.h   hipcc / clang -x hip      -> the `hip` backend
//   MLAKV_GPU_VENDOR_HEADER                   -> a header of the caller's (tests: a fake device
//                                                that runs the kernels on the host)
// Each supplies MLAKV_DEVICE, mlakv::vendor:: (device side) and mlakv::gpu::rt:: (host side).
#pragma once
#if defined(MLAKV_GPU_VENDOR_HEADER)
#include MLAKV_GPU_VENDOR_HEADER
#elif defined(__HIP__) || defined(__HIPCC__)
#include "gpu/vendors/hip.h"
#else
#include "gpu/vendors/cuda.h"
#endif

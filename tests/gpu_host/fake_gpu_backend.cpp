// The shared GPU host layer and kernel bodies, compiled as plain C++ over the fake vendor
// (fake_vendor.h, selected by MLAKV_GPU_VENDOR_HEADER): the hip backend of the host tests.
#include "gpu/gpu_backend.cu"

// The ext kernel instances for fp16 inputs: one part of the kernel table (src/gpu/kernel_table.h).
#include "gpu/kernel_instances.cuh"

template void mlakv::gpu::fill_kernels<mlakv::InType::FP16, true>(mlakv::gpu::KernelTable&);

// The plain kernel instances for bf16 inputs: one part of the kernel table (src/gpu/kernel_table.h).
#include "gpu/kernel_instances.cuh"

template void mlakv::gpu::fill_kernels<mlakv::InType::BF16, false>(mlakv::gpu::KernelTable&);

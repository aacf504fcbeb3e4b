# The CUDA backend: the shared GPU host layer and kernels (MLAKV_GPU_SOURCES) compiled by nvcc,
# plus the CUDA dispatch table (src/cuda/cuda_table.cpp); architectures: a fat binary.
# Default: SASS for sm_90a, sm_100a, sm_103a and PTX for compute_80 (the generic path, JIT-compiled
# by the driver on sm_80 / sm_89 / sm_120 and anything newer). Override with -DCMAKE_CUDA_ARCHITECTURES=...
if(NOT CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES "90a-real;100a-real;103a-real;80-virtual" CACHE STRING "" FORCE)
endif()
enable_language(CUDA)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
set_target_properties(mlakv PROPERTIES CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}")
find_package(CUDAToolkit REQUIRED)

target_sources(mlakv PRIVATE ${MLAKV_GPU_SOURCES} src/cuda/cuda_table.cpp)
target_compile_definitions(mlakv PRIVATE MLAKV_WITH_CUDA)
# Exact numerics: no FMA contraction, IEEE division/sqrt, denormals kept (no -ftz).
target_compile_options(mlakv PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:--fmad=false -ftz=false -prec-div=true -prec-sqrt=true -Xcompiler=-fvisibility=hidden --expt-relaxed-constexpr>)
if(MLAKV_WARNINGS_AS_ERRORS)
  target_compile_options(mlakv PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings>)
endif()
target_include_directories(mlakv PRIVATE ${CUDAToolkit_INCLUDE_DIRS})
if(MLAKV_CUDA_STATIC_RUNTIME)
  set_target_properties(mlakv PROPERTIES CUDA_RUNTIME_LIBRARY Static)
  target_link_libraries(mlakv PRIVATE CUDA::cudart_static)
  add_library(mlakv_cudart INTERFACE)
  target_link_libraries(mlakv_cudart INTERFACE CUDA::cudart_static)
else()
  set_target_properties(mlakv PROPERTIES CUDA_RUNTIME_LIBRARY Shared)
  target_link_libraries(mlakv PRIVATE CUDA::cudart)
  add_library(mlakv_cudart INTERFACE)
  target_link_libraries(mlakv_cudart INTERFACE CUDA::cudart)
endif()
list(APPEND _backends "cuda")

# The HIP backend: the same shared GPU host layer and kernel instances as the CUDA backend
# (MLAKV_GPU_SOURCES) compiled by hipcc for AMD targets, plus the HIP dispatch table
# (src/hip/hip_table.cpp, plain C++). hipcc is run directly (no CMake HIP language), so any hipcc
# works: ROCm's, or Debian's (HIP 5.2, which knows gfx90a and gfx940 but not gfx942 / gfx950).
#   -DMLAKV_HIP_ARCHITECTURES="gfx942;gfx950"   the targets (default: MI300X/MI325X and MI350X/MI355X;
#                                                ROCm 6.0+ knows gfx942, ROCm 7.0+ gfx950)
#   -DMLAKV_HIPCC=/opt/rocm/bin/hipcc            the compiler (default: hipcc on PATH or under ROCM_PATH)
set(MLAKV_HIP_ARCHITECTURES "gfx942;gfx950" CACHE STRING "AMD GPU targets of the HIP backend (;-list)")
find_program(MLAKV_HIPCC hipcc HINTS $ENV{ROCM_PATH}/bin /opt/rocm/bin)
find_library(MLAKV_AMDHIP64 amdhip64 HINTS $ENV{ROCM_PATH}/lib /opt/rocm/lib)
if(NOT MLAKV_HIPCC OR NOT MLAKV_AMDHIP64)
  message(FATAL_ERROR "mlakv: MLAKV_WITH_HIP needs hipcc and libamdhip64 (ROCm, or Debian: hipcc libamdhip64-dev "
                      "rocm-device-libs); found hipcc='${MLAKV_HIPCC}' libamdhip64='${MLAKV_AMDHIP64}'")
endif()

# mlakv_hip_object(OBJ SOURCE COMMENT FLAGS <flags...> DEPENDS <files...>): a custom command that
# compiles SOURCE with MLAKV_HIPCC for every MLAKV_HIP_ARCHITECTURES target into the object OBJ,
# for add_library / add_executable of the calling directory (the library's GPU source here, and
# bench/'s mlakv-tune). Common flags: exact numerics (no contraction, no fast math), warnings (as
# errors with MLAKV_WARNINGS_AS_ERRORS).
function(mlakv_hip_object obj source comment)
  cmake_parse_arguments(_a "" "" "FLAGS;DEPENDS" ${ARGN})
  set(_flags -x hip -std=c++17 -O3 -fPIC ${_a_FLAGS} -ffp-contract=off -fno-fast-math -Wall -Wextra)
  if(MLAKV_WARNINGS_AS_ERRORS)
    list(APPEND _flags -Werror)
  endif()
  foreach(_arch IN LISTS MLAKV_HIP_ARCHITECTURES)
    list(APPEND _flags --offload-arch=${_arch})
  endforeach()
  add_custom_command(OUTPUT ${obj}
    COMMAND ${MLAKV_HIPCC} ${_flags} -c ${source} -o ${obj}
    DEPENDS ${source} ${_a_DEPENDS}
    COMMENT "hipcc: ${comment} for ${MLAKV_HIP_ARCHITECTURES}"
    VERBATIM)
  set_source_files_properties(${obj} PROPERTIES EXTERNAL_OBJECT TRUE GENERATED TRUE)
endfunction()

file(GLOB _hip_deps ${CMAKE_CURRENT_SOURCE_DIR}/src/gpu/*.h ${CMAKE_CURRENT_SOURCE_DIR}/src/gpu/*.cuh
     ${CMAKE_CURRENT_SOURCE_DIR}/src/gpu/vendors/*.h ${CMAKE_CURRENT_SOURCE_DIR}/src/core/*.h
     ${CMAKE_CURRENT_SOURCE_DIR}/include/mlakv/mlakv.h)
set(_hip_objs)
foreach(_src IN LISTS MLAKV_GPU_SOURCES)  # one object each: the build compiles them at once
  file(RELATIVE_PATH _rel ${CMAKE_CURRENT_SOURCE_DIR} ${_src})
  string(REGEX REPLACE "[/.]" "_" _obj "${_rel}")
  set(_obj ${CMAKE_CURRENT_BINARY_DIR}/${_obj}_hip.o)
  mlakv_hip_object(${_obj} ${_src} ${_rel}
    FLAGS -fvisibility=hidden -fvisibility-inlines-hidden -DMLAKV_BUILDING_LIBRARY -DMLAKV_WITH_HIP
          -I${CMAKE_CURRENT_SOURCE_DIR}/src -I${CMAKE_CURRENT_SOURCE_DIR}/include
    DEPENDS ${_hip_deps})
  list(APPEND _hip_objs ${_obj})
endforeach()
target_sources(mlakv PRIVATE ${_hip_objs} src/hip/hip_table.cpp)
target_compile_definitions(mlakv PRIVATE MLAKV_WITH_HIP)
target_link_libraries(mlakv PRIVATE ${MLAKV_AMDHIP64})
message(STATUS "mlakv: HIP backend with ${MLAKV_HIPCC} for ${MLAKV_HIP_ARCHITECTURES}")
list(APPEND _backends "hip")

# Finds Kokkos and defines the target mlakv::kokkos.
#  1. A regular install: find_package(Kokkos CONFIG), used if its include dirs exist.
#  2. Debian's libtrilinos-kokkos-dev, whose CMake config points at /usr/lib/include (broken):
#     Kokkos_Core.hpp under /usr/include/trilinos and libtrilinos_kokkoscore found by hand.
include_guard(GLOBAL)

set(_mlakv_kokkos_ok FALSE)
find_package(Kokkos CONFIG QUIET)
if(Kokkos_FOUND AND TARGET Kokkos::kokkos)
  get_target_property(_inc Kokkos::kokkos INTERFACE_INCLUDE_DIRECTORIES)
  set(_mlakv_kokkos_ok TRUE)
  if(_inc)
    foreach(_d IN LISTS _inc)
      if(NOT _d MATCHES "^\\$<" AND NOT EXISTS "${_d}")
        set(_mlakv_kokkos_ok FALSE)
      endif()
    endforeach()
  endif()
endif()

if(_mlakv_kokkos_ok)
  message(STATUS "mlakv: Kokkos ${Kokkos_VERSION} from find_package")
  add_library(mlakv::kokkos INTERFACE IMPORTED GLOBAL)
  target_link_libraries(mlakv::kokkos INTERFACE Kokkos::kokkos)
else()
  find_path(MLAKV_KOKKOS_INCLUDE_DIR Kokkos_Core.hpp
            HINTS ${KOKKOS_ROOT}/include /usr/include/trilinos /usr/local/include/trilinos)
  find_library(MLAKV_KOKKOS_LIBRARY NAMES kokkoscore trilinos_kokkoscore
               HINTS ${KOKKOS_ROOT}/lib /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu)
  if(NOT MLAKV_KOKKOS_INCLUDE_DIR OR NOT MLAKV_KOKKOS_LIBRARY)
    message(FATAL_ERROR "mlakv: Kokkos not found. On Debian: apt-get install libtrilinos-kokkos-dev; "
                        "or set Kokkos_DIR / KOKKOS_ROOT to a Kokkos install.")
  endif()
  message(STATUS "mlakv: Kokkos by hand: ${MLAKV_KOKKOS_INCLUDE_DIR}, ${MLAKV_KOKKOS_LIBRARY}")
  add_library(mlakv::kokkos INTERFACE IMPORTED GLOBAL)
  target_include_directories(mlakv::kokkos SYSTEM INTERFACE ${MLAKV_KOKKOS_INCLUDE_DIR})
  target_link_libraries(mlakv::kokkos INTERFACE ${MLAKV_KOKKOS_LIBRARY} ${CMAKE_DL_LIBS})
endif()

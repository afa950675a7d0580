# Finds the Debian packages tcorex needs. Each failure names the package that
# provides the missing piece; scripts/setup.sh installs all of them.
find_package(PkgConfig)
if(NOT PkgConfig_FOUND)
  message(FATAL_ERROR "pkg-config not found: install the Debian package pkg-config")
endif()

function(tcx_require_pkg target module package)
  pkg_check_modules(${target}_PC IMPORTED_TARGET ${module})
  if(NOT ${target}_PC_FOUND)
    message(FATAL_ERROR
      "${module} not found by pkg-config: install the Debian package ${package} "
      "(scripts/setup.sh installs every dependency)")
  endif()
  add_library(tcx::${target} INTERFACE IMPORTED)
  target_link_libraries(tcx::${target} INTERFACE PkgConfig::${target}_PC)
endfunction()

find_package(MPI COMPONENTS C)
if(NOT MPI_C_FOUND)
  message(FATAL_ERROR "MPI not found: install the Debian packages libopenmpi-dev openmpi-bin")
endif()

# Parallel HDF5: Debian's libhdf5-openmpi-dev provides pkg-config hdf5-openmpi.
tcx_require_pkg(hdf5 hdf5-openmpi libhdf5-openmpi-dev)
include(CheckSymbolExists)
set(CMAKE_REQUIRED_INCLUDES ${hdf5_PC_INCLUDE_DIRS} ${MPI_C_INCLUDE_DIRS})
check_symbol_exists(H5_HAVE_PARALLEL "H5pubconf.h" TCX_HDF5_IS_PARALLEL)
unset(CMAKE_REQUIRED_INCLUDES)
if(NOT TCX_HDF5_IS_PARALLEL)
  message(FATAL_ERROR
    "the HDF5 found is not built with MPI-IO: install the Debian package "
    "libhdf5-openmpi-dev")
endif()

tcx_require_pkg(scalapack scalapack-openmpi libscalapack-openmpi-dev)
tcx_require_pkg(lapacke lapacke liblapacke-dev)
tcx_require_pkg(openblas openblas libopenblas-dev)

# Debian's NIFTI CMake package points at files that do not exist, so the
# library is found by name.
find_path(TCX_NIFTI_INCLUDE_DIR nifti1_io.h PATH_SUFFIXES nifti)
find_library(TCX_NIFTI_IO_LIBRARY niftiio)
find_library(TCX_ZNZ_LIBRARY znz)
find_package(ZLIB)
if(NOT TCX_NIFTI_INCLUDE_DIR OR NOT TCX_NIFTI_IO_LIBRARY OR NOT TCX_ZNZ_LIBRARY
   OR NOT ZLIB_FOUND)
  message(FATAL_ERROR
    "nifticlib not found: install the Debian packages libnifti2-dev zlib1g-dev")
endif()
add_library(tcx::nifti INTERFACE IMPORTED)
target_include_directories(tcx::nifti INTERFACE ${TCX_NIFTI_INCLUDE_DIR})
target_link_libraries(tcx::nifti INTERFACE
  ${TCX_NIFTI_IO_LIBRARY} ${TCX_ZNZ_LIBRARY} ZLIB::ZLIB m)

# PLplot draws the change-point plot (tcorex changepoints --plot) with its
# pngcairo device, which the separate package plplot-driver-cairo provides
# and which is only found at run time.
tcx_require_pkg(plplot plplot libplplot-dev)

if(TCX_BUILD_TESTS)
  tcx_require_pkg(cmocka cmocka libcmocka-dev)
endif()

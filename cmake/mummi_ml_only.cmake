# The ML-only build (MUMMI_ML_ONLY=ON): mummi::ml and bench/ml_bench on a machine that has
# LibTorch (e.g. a PyTorch wheel's, with CUDA:
#   cmake -S . -B build/ml -G Ninja -DMUMMI_ML_ONLY=ON \
#         -DCMAKE_PREFIX_PATH=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
# ) and none of the project's other dependencies. mummi::ml uses the coupling library only for
# `frame_block`, whose members it needs are defined in frame_store.hpp, so the coupling headers
# stand in for mummi::coupling. nlohmann_json is header-only: when no CMake package of it is
# installed, -DMUMMI_NLOHMANN_INCLUDE=DIR names a folder holding nlohmann/json.hpp.
set(MUMMI_NLOHMANN_INCLUDE "" CACHE PATH
    "ML-only build: folder holding nlohmann/json.hpp, used when find_package(nlohmann_json) fails")

find_package(Threads REQUIRED)

find_package(nlohmann_json QUIET)
if(NOT nlohmann_json_FOUND)
  if(NOT MUMMI_NLOHMANN_INCLUDE)
    message(FATAL_ERROR "MUMMI_ML_ONLY: no nlohmann_json CMake package was found; install one "
                        "or give -DMUMMI_NLOHMANN_INCLUDE=DIR, a folder holding "
                        "nlohmann/json.hpp")
  endif()
  get_filename_component(_mummi_nlohmann "${MUMMI_NLOHMANN_INCLUDE}" ABSOLUTE
                         BASE_DIR "${CMAKE_SOURCE_DIR}")
  if(NOT EXISTS "${_mummi_nlohmann}/nlohmann/json.hpp")
    message(FATAL_ERROR "MUMMI_NLOHMANN_INCLUDE=${MUMMI_NLOHMANN_INCLUDE}: "
                        "${_mummi_nlohmann}/nlohmann/json.hpp does not exist")
  endif()
  # A package configuration file of our own, so that ml/'s find_package(nlohmann_json) finds
  # the headers too.
  set(_mummi_nlohmann_config "${CMAKE_BINARY_DIR}/nlohmann_json-headers")
  file(WRITE "${_mummi_nlohmann_config}/nlohmann_jsonConfig.cmake"
       "# Written by cmake/mummi_ml_only.cmake: the headers in ${_mummi_nlohmann}.\n"
       "if(NOT TARGET nlohmann_json::nlohmann_json)\n"
       "  add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)\n"
       "  set_target_properties(nlohmann_json::nlohmann_json PROPERTIES\n"
       "    INTERFACE_INCLUDE_DIRECTORIES \"${_mummi_nlohmann}\")\n"
       "endif()\n")
  set(nlohmann_json_DIR "${_mummi_nlohmann_config}" CACHE PATH
      "nlohmann_json package configuration" FORCE)
  find_package(nlohmann_json REQUIRED)
  message(STATUS "nlohmann_json: headers from ${_mummi_nlohmann}")
endif()

add_library(mummi_coupling_headers INTERFACE)
target_include_directories(mummi_coupling_headers INTERFACE
                           "${CMAKE_SOURCE_DIR}/coupling/include")
add_library(mummi::coupling ALIAS mummi_coupling_headers)

add_subdirectory(ml)
if(MUMMI_BUILD_BENCH)
  add_subdirectory(bench)
endif()

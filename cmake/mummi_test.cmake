# mummi_add_test(NAME name SOURCES ... LIBS ... TIER unit|integration|slow
#                [LABELS capability...] [TIMEOUT seconds] [PREFIX name-prefix])
# Registers every GoogleTest case of the executable with ctest, each carrying the tier label
# and the capability labels (gtest_add_tests + set_tests_properties, since
# gtest_discover_tests keeps only the first label of a list on CMake 3.25).
include(GoogleTest)
find_package(GTest REQUIRED)
function(mummi_add_test)
  cmake_parse_arguments(T "" "NAME;TIER;TIMEOUT;PREFIX" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT T_TIER MATCHES "^(unit|integration|slow)$")
    message(FATAL_ERROR "mummi_add_test(${T_NAME}): TIER must be unit, integration or slow")
  endif()
  if(NOT T_TIMEOUT)
    if(T_TIER STREQUAL "unit")
      set(T_TIMEOUT 60)
    elseif(T_TIER STREQUAL "integration")
      set(T_TIMEOUT 300)
    else()
      set(T_TIMEOUT 900)
    endif()
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main)
  mummi_target_warnings(${T_NAME})
  gtest_add_tests(TARGET ${T_NAME} SOURCES ${T_SOURCES} TEST_PREFIX "${T_PREFIX}"
                  TEST_LIST _tests)
  set_tests_properties(${_tests} PROPERTIES LABELS "${T_TIER};${T_LABELS}" TIMEOUT ${T_TIMEOUT})
endfunction()

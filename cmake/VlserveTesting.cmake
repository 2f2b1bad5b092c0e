find_package(GTest REQUIRED)
include(GoogleTest)

# vlserve_add_unit_test(NAME name SOURCES a_test.cc ... LIBS vlserve_x ...)
# Builds one GoogleTest binary and registers each of its tests with CTest under the
# label "unit" (the set CI also runs under ASan/UBSan). The working directory is the
# source tree, so tests can find tests/golden and ../shared.
function(vlserve_add_unit_test)
  cmake_parse_arguments(T "" "NAME;LABEL" "SOURCES;LIBS" ${ARGN})
  if(NOT T_LABEL)
    set(T_LABEL unit)
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main)
  target_compile_definitions(${T_NAME} PRIVATE
    VLSERVE_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    VLSERVE_BINARY_DIR="${PROJECT_BINARY_DIR}")
  gtest_discover_tests(${T_NAME}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    PROPERTIES LABELS ${T_LABEL}
    DISCOVERY_TIMEOUT 60)
endfunction()

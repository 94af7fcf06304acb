# Installs the library, its headers under include/tapegrad/, and a CMake package so another
# project can write:
#   find_package(tapegrad REQUIRED)
#   target_link_libraries(app PRIVATE tapegrad::tapegrad)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(TAPEGRAD_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/tapegrad")

install(TARGETS tapegrad
  EXPORT tapegradTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# Headers keep their folders: include/tapegrad/core/tape.hpp, include/tapegrad/ops/arith.hpp, ...
install(FILES ${PROJECT_SOURCE_DIR}/tapegrad.hpp
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/tapegrad)
foreach(dir core kernels ops layers optim train)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${dir}/
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/tapegrad/${dir}
    FILES_MATCHING PATTERN "*.hpp"
    PATTERN "support.hpp" EXCLUDE PATTERN "engine_ops.hpp" EXCLUDE PATTERN "counters.hpp" EXCLUDE
    PATTERN "vector_math_kernels.hpp" EXCLUDE)
endforeach()

install(EXPORT tapegradTargets
  NAMESPACE tapegrad::
  DESTINATION ${TAPEGRAD_CMAKE_DIR})

# A static library carries its private link dependencies into the consumer's link: the
# nlohmann_json target must then be found by the config too (OpenBLAS is recorded as a path).
get_target_property(TAPEGRAD_LIBRARY_TYPE tapegrad TYPE)
if(TAPEGRAD_LIBRARY_TYPE STREQUAL "STATIC_LIBRARY")
  set(TAPEGRAD_STATIC ON)
else()
  set(TAPEGRAD_STATIC OFF)
endif()

configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/tapegradConfig.cmake.in
  ${PROJECT_BINARY_DIR}/tapegradConfig.cmake
  INSTALL_DESTINATION ${TAPEGRAD_CMAKE_DIR})
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/tapegradConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/tapegradConfig.cmake
  ${PROJECT_BINARY_DIR}/tapegradConfigVersion.cmake
  DESTINATION ${TAPEGRAD_CMAKE_DIR})

# Installs a tapegrad build tree into a fresh prefix, then configures, builds and runs the
# consumer project against that prefix alone.
#   cmake -DBUILD_DIR=<tapegrad build> -DSOURCE_DIR=<tests/consumer> -DWORK_DIR=<scratch>
#         [-DCONFIG=Release] [-DCXX_COMPILER=...] [-DTOOLCHAIN_FILE=...] [-DEMULATOR=<command>]
#         -P run_consumer.cmake
# (cross-compiling: the consumer is built with the same toolchain file and run under EMULATOR)
foreach(var BUILD_DIR SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_consumer.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT CONFIG)
  set(CONFIG Release)
endif()
set(prefix "${WORK_DIR}/prefix")
set(build "${WORK_DIR}/build")
file(REMOVE_RECURSE "${WORK_DIR}")

function(run step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install_consumer: ${step} failed (${rc})")
  endif()
endfunction()

run(install "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}" --config ${CONFIG})

set(configure_args -S "${SOURCE_DIR}" -B "${build}" -DCMAKE_BUILD_TYPE=${CONFIG}
    "-DCMAKE_PREFIX_PATH=${prefix}" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
if(CXX_COMPILER)
  list(APPEND configure_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()
if(TOOLCHAIN_FILE)
  list(APPEND configure_args "-DCMAKE_TOOLCHAIN_FILE=${TOOLCHAIN_FILE}")
endif()
run(configure "${CMAKE_COMMAND}" ${configure_args})

# The package must come from the fresh prefix, not from anywhere else on the machine.
file(STRINGS "${build}/CMakeCache.txt" found REGEX "^tapegrad_DIR:")
string(REGEX REPLACE "^[^=]*=" "" found "${found}")
file(REAL_PATH "${found}" found)
file(REAL_PATH "${prefix}" real_prefix)
string(FIND "${found}" "${real_prefix}/" at)
if(NOT at EQUAL 0)
  message(FATAL_ERROR "install_consumer: tapegrad was found in ${found}, not under ${prefix}")
endif()

run(build "${CMAKE_COMMAND}" --build "${build}" --config ${CONFIG})

find_program(consumer consumer PATHS "${build}" "${build}/${CONFIG}" NO_DEFAULT_PATH REQUIRED)
separate_arguments(emulator UNIX_COMMAND "${EMULATOR}")
run(run ${emulator} "${consumer}")

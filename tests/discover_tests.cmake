# cmake -DEXECUTABLE=<doctest binary> [-DEMULATOR=<command>] -DWORKING_DIR=<dir> -DOUTPUT=<file>
#       -P discover_tests.cmake
# Writes OUTPUT, a file for ctest to include: one test per case EXECUTABLE lists, run alone with
# --test-case=<name>. (doctest.cmake's doctest_discover_tests splits names at ';', a CMake list
# separator, and the halves select no case, so those cases would pass without running; names
# are cut at line ends here, without CMake lists.) A run that selects no case fails. EMULATOR
# (a command line, e.g. "qemu-aarch64" when cross-compiling) runs EXECUTABLE, here and in ctest.
separate_arguments(emulator UNIX_COMMAND "${EMULATOR}")
set(run "")
foreach(arg IN LISTS emulator)
  string(APPEND run "[==[${arg}]==] ")
endforeach()
set(env "")
if(EMULATOR)  # for a test that starts the binary again (tests/test_vector_math.cpp)
  set(env " ENVIRONMENT [==[TAPEGRAD_TEST_EMULATOR=${EMULATOR}]==]")
endif()
execute_process(COMMAND ${emulator} "${EXECUTABLE}" --list-test-cases
  OUTPUT_VARIABLE out RESULT_VARIABLE result WORKING_DIRECTORY "${WORKING_DIR}")
if(NOT result EQUAL 0)
  message(FATAL_ERROR "${EXECUTABLE} --list-test-cases failed (${result}):\n${out}")
endif()

set(script "")
while(NOT out STREQUAL "")
  string(FIND "${out}" "\n" eol)
  if(eol EQUAL -1)
    set(name "${out}")
    set(out "")
  else()
    string(SUBSTRING "${out}" 0 ${eol} name)
    math(EXPR eol "${eol} + 1")
    string(SUBSTRING "${out}" ${eol} -1 out)
  endif()
  if(name STREQUAL "" OR name MATCHES "^===+$" OR name MATCHES "^\\[doctest\\] ")
    continue()
  endif()
  # In doctest's filter ',' separates names unless escaped; '*' and '?' also match themselves.
  string(REPLACE "," "\\," filter "${name}")
  string(APPEND script
    "add_test([==[${name}]==] ${run}\"${EXECUTABLE}\" [==[--test-case=${filter}]==])\n"
    "set_tests_properties([==[${name}]==] PROPERTIES WORKING_DIRECTORY \"${WORKING_DIR}\""
    " FAIL_REGULAR_EXPRESSION \"test cases: +0 [|]\"${env})\n")
endwhile()
file(WRITE "${OUTPUT}" "${script}")

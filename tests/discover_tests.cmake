# cmake -DEXECUTABLE=<doctest binary> -DWORKING_DIR=<dir> -DOUTPUT=<file> -P discover_tests.cmake
# Writes OUTPUT, a file for ctest to include: one test per case EXECUTABLE lists, run alone with
# --test-case=<name>. (doctest.cmake's doctest_discover_tests splits names at ';', a CMake list
# separator, and the halves select no case, so those cases would pass without running; names
# are cut at line ends here, without CMake lists.) A run that selects no case fails.
execute_process(COMMAND "${EXECUTABLE}" --list-test-cases
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
    "add_test([==[${name}]==] \"${EXECUTABLE}\" [==[--test-case=${filter}]==])\n"
    "set_tests_properties([==[${name}]==] PROPERTIES WORKING_DIRECTORY \"${WORKING_DIR}\""
    " FAIL_REGULAR_EXPRESSION \"test cases: +0 [|]\")\n")
endwhile()
file(WRITE "${OUTPUT}" "${script}")

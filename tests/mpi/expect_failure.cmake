# Runs COMMAND (a list) and passes when it ends within 60 s with a nonzero exit code and its
# output contains EXPECT.
#   cmake "-DCOMMAND=mpirun;-np;2;prog;abort" "-DEXPECT=rank 1: ..." -P expect_failure.cmake
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
message("${out}${err}")
if(NOT rc MATCHES "^[0-9]+$")
  message(FATAL_ERROR "the job did not end by itself: ${rc}")
endif()
if(rc EQUAL 0)
  message(FATAL_ERROR "expected a nonzero exit, got 0")
endif()
string(FIND "${out}${err}" "${EXPECT}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "the output does not contain '${EXPECT}' (exit: ${rc})")
endif()

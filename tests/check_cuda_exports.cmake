# Fails unless the CUDA backend module exports exactly its entry point,
# kiln_backend_cuda_init (the CUDA runtime linked into it stays hidden).
execute_process(COMMAND nm -D --defined-only ${LIB} OUTPUT_VARIABLE syms RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "nm failed on ${LIB}")
endif()
string(REPLACE "\n" ";" lines "${syms}")
set(found "")
foreach(line ${lines})
  if(line MATCHES " [A-Za-z] ([A-Za-z_][A-Za-z0-9_@.]*)$")
    set(sym ${CMAKE_MATCH_1})
    if(NOT sym MATCHES "^_(init|fini|edata|end|_bss_start)$")
      list(APPEND found ${sym})
    endif()
  endif()
endforeach()
if(NOT found STREQUAL "kiln_backend_cuda_init")
  message(FATAL_ERROR "libkiln-cuda exports [${found}], wanted only kiln_backend_cuda_init")
endif()
message(STATUS "libkiln-cuda exports kiln_backend_cuda_init and nothing else")

# Nor may it need anything from libkiln: Python loads libkiln with
# RTLD_LOCAL, so a module libkiln dlopens cannot see libkiln's symbols.
execute_process(COMMAND nm -D --undefined-only ${LIB} OUTPUT_VARIABLE undef)
string(REGEX MATCHALL "kiln_[A-Za-z0-9_]*" needs "${undef}")
if(needs)
  message(FATAL_ERROR "libkiln-cuda needs libkiln symbols ${needs}; the host table must provide them instead")
endif()

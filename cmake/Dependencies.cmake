# Every dependency comes from Debian's packages (scripts/install-deps.sh installs them). The `mooncake`
# binary links all of them statically, the C library included, so it depends on nothing at run
# time; the Python extension links them statically too, but for glibc and libibverbs (loaded from
# the host at run time: src/engine/rdma/ibverbs.h):
#   - abseil: its Debian source package, compiled here (see below);
#   - RE2 (the master only), OpenSSL's libcrypto (HMAC for authentication; its archive is
#     position-independent), rdma-core (libibverbs with its static providers, librdmacm) and libnl:
#     Debian's .a files, resolved through pkg-config --static;
#   - cpp-httplib: Debian ships it only as a shared library, so we compile the single header from
#     Debian's source package of the same version (unpacked by install-deps.sh into .deps/);
#   - simdjson: likewise only a shared library in Debian; its amalgamated simdjson.cpp from Debian's
#     source package is compiled into a static archive of ours (it picks its CPU kernels at run time);
#   - http-parser (the server's parser of simple requests): Debian's .a, position-independent;
#   - spdlog, fmt, CLI11, nlohmann/json: header-only;
#   - libstdc++ and libgcc: -static-libstdc++ -static-libgcc (the extension).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

set(MOONCAKE_HTTPLIB_DIR "${MOONCAKE_DEPS_DIR}/cpp-httplib")
if(NOT EXISTS "${MOONCAKE_HTTPLIB_DIR}/httplib.h")
  message(FATAL_ERROR "cpp-httplib source not found in ${MOONCAKE_HTTPLIB_DIR}: run scripts/install-deps.sh")
endif()
add_library(mooncake_httplib INTERFACE)
target_include_directories(mooncake_httplib SYSTEM INTERFACE "${MOONCAKE_HTTPLIB_DIR}")

set(MOONCAKE_SIMDJSON_DIR "${MOONCAKE_DEPS_DIR}/simdjson")
if(NOT EXISTS "${MOONCAKE_SIMDJSON_DIR}/simdjson.cpp")
  message(FATAL_ERROR "simdjson source not found in ${MOONCAKE_SIMDJSON_DIR}: run scripts/install-deps.sh")
endif()
add_library(mooncake_simdjson STATIC "${MOONCAKE_SIMDJSON_DIR}/simdjson.cpp")
target_include_directories(mooncake_simdjson SYSTEM PUBLIC "${MOONCAKE_SIMDJSON_DIR}")
# Errors are returned as codes; nothing of ours uses simdjson's exceptions.
target_compile_definitions(mooncake_simdjson PUBLIC SIMDJSON_EXCEPTIONS=0)

find_path(HTTP_PARSER_INCLUDE http_parser.h REQUIRED)
find_library(HTTP_PARSER_ARCHIVE NAMES libhttp_parser.a REQUIRED)
add_library(mooncake_http_parser INTERFACE)
target_include_directories(mooncake_http_parser SYSTEM INTERFACE "${HTTP_PARSER_INCLUDE}")
target_link_libraries(mooncake_http_parser INTERFACE "${HTTP_PARSER_ARCHIVE}")

find_path(NLOHMANN_JSON_INCLUDE nlohmann/json.hpp REQUIRED)
find_path(CLI11_INCLUDE CLI/CLI.hpp REQUIRED)
find_path(SPDLOG_INCLUDE spdlog/spdlog.h REQUIRED)

# Header-only logging: spdlog without its compiled library, fmt without libfmt.so.
add_library(mooncake_headers INTERFACE)
target_include_directories(mooncake_headers SYSTEM INTERFACE
  "${NLOHMANN_JSON_INCLUDE}" "${CLI11_INCLUDE}" "${SPDLOG_INCLUDE}")
target_compile_definitions(mooncake_headers INTERFACE FMT_HEADER_ONLY=1 SPDLOG_FMT_EXTERNAL=1)

# Static archives through pkg-config, as full paths in one link group each (abseil's and rdma-core's
# archives reference each other in both directions; LINK_GROUP keeps the group intact, where plain
# --start-group flags would be deduplicated across targets by CMake).
function(mooncake_static_pkg target)
  pkg_check_modules(${target}_PC REQUIRED ${ARGN})
  add_library(${target} INTERFACE)
  target_include_directories(${target} SYSTEM INTERFACE ${${target}_PC_STATIC_INCLUDE_DIRS})
  set(archives "")
  foreach(lib IN LISTS ${target}_PC_STATIC_LIBRARIES)
    if(lib MATCHES "^(pthread|dl|rt|m|c)$")
      continue()
    endif()
    find_library(${target}_${lib}_A NAMES "lib${lib}.a"
                 HINTS ${${target}_PC_STATIC_LIBRARY_DIRS} /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE})
    if(NOT ${target}_${lib}_A)
      # Compiler runtime archives (libatomic.a) live in the compiler's own directory.
      execute_process(COMMAND "${CMAKE_CXX_COMPILER}" "-print-file-name=lib${lib}.a"
                      OUTPUT_VARIABLE from_compiler OUTPUT_STRIP_TRAILING_WHITESPACE)
      if(IS_ABSOLUTE "${from_compiler}" AND EXISTS "${from_compiler}")
        set(${target}_${lib}_A "${from_compiler}")
      else()
        message(FATAL_ERROR "static archive lib${lib}.a (needed by ${ARGN}) not found")
      endif()
    endif()
    list(APPEND archives "${${target}_${lib}_A}")
  endforeach()
  list(REMOVE_DUPLICATES archives)
  list(JOIN archives "," archive_list)
  target_link_libraries(${target} INTERFACE "$<LINK_GROUP:RESCAN,${archive_list}>" Threads::Threads)
endfunction()

# abseil: Debian's source package of the same version compiled as part of this build with its
# flags (MOONCAKE_ABSL_FROM_SOURCE, the default of the plain and ThreadSanitizer builds): position-
# independent, so that the Python extension links it in, and instrumented under TSan, which sees
# the happens-before that absl::Mutex gives only then. Or Debian's archives (the ASan build).
if(MOONCAKE_SANITIZE)
  set(absl_from_source_default OFF)
else()
  set(absl_from_source_default ON)
endif()
option(MOONCAKE_ABSL_FROM_SOURCE "Compile abseil from its Debian source package in .deps/abseil"
       ${absl_from_source_default})
set(MOONCAKE_ABSL_COMPONENTS status statusor synchronization flat_hash_map str_format strings time
    random_random)
if(MOONCAKE_ABSL_FROM_SOURCE)
  if(NOT EXISTS "${MOONCAKE_DEPS_DIR}/abseil/CMakeLists.txt")
    message(FATAL_ERROR "abseil source not found in ${MOONCAKE_DEPS_DIR}/abseil: run scripts/install-deps.sh")
  endif()
  set(ABSL_PROPAGATE_CXX_STD ON)
  set(ABSL_BUILD_TESTING OFF)
  set(ABSL_ENABLE_INSTALL OFF)
  add_subdirectory("${MOONCAKE_DEPS_DIR}/abseil" "${CMAKE_BINARY_DIR}/abseil" EXCLUDE_FROM_ALL SYSTEM)
  add_library(mooncake_absl INTERFACE)
  list(TRANSFORM MOONCAKE_ABSL_COMPONENTS PREPEND "absl::" OUTPUT_VARIABLE absl_targets)
  target_link_libraries(mooncake_absl INTERFACE ${absl_targets})
else()
  list(TRANSFORM MOONCAKE_ABSL_COMPONENTS PREPEND "absl_" OUTPUT_VARIABLE absl_modules)
  mooncake_static_pkg(mooncake_absl_static ${absl_modules})
  # A target with MOONCAKE_SHARED_ABSL set (the Python extension of a source build: setup.py)
  # links the host's shared abseil instead: the static archives of distributions use local-exec
  # thread-local storage, which no shared object can hold.
  pkg_check_modules(mooncake_absl_shared_PC REQUIRED IMPORTED_TARGET ${absl_modules})
  add_library(mooncake_absl INTERFACE)
  target_link_libraries(mooncake_absl INTERFACE
    "$<IF:$<BOOL:$<TARGET_PROPERTY:MOONCAKE_SHARED_ABSL>>,PkgConfig::mooncake_absl_shared_PC,mooncake_absl_static>")
endif()
mooncake_static_pkg(mooncake_rdma libibverbs librdmacm)
# verbs.h alone, for code that calls libibverbs through engine/rdma/ibverbs.h without linking it.
add_library(mooncake_rdma_headers INTERFACE)
target_include_directories(mooncake_rdma_headers SYSTEM INTERFACE
  ${mooncake_rdma_PC_STATIC_INCLUDE_DIRS})
mooncake_static_pkg(mooncake_re2 re2)
mooncake_static_pkg(mooncake_yaml yaml-cpp)
mooncake_static_pkg(mooncake_crypto libcrypto)

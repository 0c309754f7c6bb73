# Every dependency comes from Debian's packages (scripts/install-deps.sh installs them). The `mooncake`
# binary links all of them statically, so it depends on nothing but the C library at run time:
#   - abseil, RE2, rdma-core (libibverbs with its static providers, librdmacm) and libnl: Debian's .a files,
#     resolved through pkg-config --static;
#   - cpp-httplib: Debian ships it only as a shared library, so we compile the single header from
#     Debian's source package of the same version (unpacked by install-deps.sh into .deps/);
#   - spdlog, fmt, CLI11, nlohmann/json: header-only;
#   - libstdc++ and libgcc: -static-libstdc++ -static-libgcc.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

set(MOONCAKE_HTTPLIB_DIR "${MOONCAKE_DEPS_DIR}/cpp-httplib")
if(NOT EXISTS "${MOONCAKE_HTTPLIB_DIR}/httplib.h")
  message(FATAL_ERROR "cpp-httplib source not found in ${MOONCAKE_HTTPLIB_DIR}: run scripts/install-deps.sh")
endif()
add_library(mooncake_httplib INTERFACE)
target_include_directories(mooncake_httplib SYSTEM INTERFACE "${MOONCAKE_HTTPLIB_DIR}")

find_path(NLOHMANN_JSON_INCLUDE nlohmann/json.hpp REQUIRED)
find_path(CLI11_INCLUDE CLI/CLI.hpp REQUIRED)
find_path(SPDLOG_INCLUDE spdlog/spdlog.h REQUIRED)

# Header-only logging: spdlog without its compiled library, fmt without libfmt.so.
add_library(mooncake_headers INTERFACE)
target_include_directories(mooncake_headers SYSTEM INTERFACE
  "${NLOHMANN_JSON_INCLUDE}" "${CLI11_INCLUDE}" "${SPDLOG_INCLUDE}")
target_compile_definitions(mooncake_headers INTERFACE FMT_HEADER_ONLY=1 SPDLOG_FMT_EXTERNAL=1)

# Static archives through pkg-config. Wrapped in a link group because abseil's archives reference each
# other in both directions.
function(mooncake_static_pkg target)
  pkg_check_modules(${target}_PC REQUIRED IMPORTED_TARGET ${ARGN})
  add_library(${target} INTERFACE)
  target_include_directories(${target} SYSTEM INTERFACE ${${target}_PC_STATIC_INCLUDE_DIRS})
  set(libs "")
  foreach(lib IN LISTS ${target}_PC_STATIC_LIBRARIES)
    if(lib MATCHES "^(pthread|dl|rt|m|c)$")
      continue()
    endif()
    list(APPEND libs "-l:lib${lib}.a")
  endforeach()
  list(REMOVE_DUPLICATES libs)
  target_link_libraries(${target} INTERFACE
    "-Wl,--start-group" ${libs} "-Wl,--end-group" Threads::Threads)
endfunction()

mooncake_static_pkg(mooncake_absl
  absl_status absl_statusor absl_synchronization absl_flat_hash_map absl_str_format
  absl_strings absl_time absl_random_random)
mooncake_static_pkg(mooncake_rdma libibverbs librdmacm)
mooncake_static_pkg(mooncake_re2 re2)

// The one place that includes cpp-httplib, with the compile-time settings every translation unit
// that uses it must share.
#pragma once

// poll(2) instead of select(2): a server with hundreds of connections has descriptors past
// FD_SETSIZE, which select cannot watch (cpp-httplib then answers 500).
#define CPPHTTPLIB_USE_POLL 1
// Control-plane messages are small and latency-bound.
#define CPPHTTPLIB_TCP_NODELAY true
// Longest request line we accept (414 beyond): a batch key list belongs in a body, not a URL.
#define CPPHTTPLIB_REQUEST_URI_MAX_LENGTH 8192
// Longest single header line (400 beyond). The total of all lines is bounded in server.cc.
#define CPPHTTPLIB_HEADER_MAX_LENGTH 8192
// Connections waiting to be accepted: thousands of clients may connect at once (the kernel caps it
// at net.core.somaxconn). cpp-httplib's default of 5 made connects stall for a second.
#define CPPHTTPLIB_LISTEN_BACKLOG 4096
// A body is read in chunks of this size, each a poll(2) and a recv(2): with 4 KiB (cpp-httplib's
// default), a batch of 128 SGLang keys (9 KiB) took three of each and the 128 answers of a
// BatchGetReplicaList (19 KiB) five; with 64 KiB, one or two. (On the stack of the reading thread.)
#define CPPHTTPLIB_RECV_BUFSIZ size_t(65536u)

#include "httplib.h"  // IWYU pragma: export

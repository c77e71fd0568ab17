//! Test harness: real platforms, nodes and mock upstreams on port 0 with temporary dirs.

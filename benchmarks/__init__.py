"""Scale benchmarks: a socket lab in its own namespace and timings against `ss`."""

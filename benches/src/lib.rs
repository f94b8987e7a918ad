//! Workload generators and harnesses for Ferrox's benchmarks.

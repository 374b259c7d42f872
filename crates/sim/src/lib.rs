//! dnsight-sim

//! dnsight-engine

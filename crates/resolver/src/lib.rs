//! dnsight-resolver

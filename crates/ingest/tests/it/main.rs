//! Integration tests of dnsight-ingest: one test binary, one module per source.

mod capture;
mod corpus;
mod dnstap;
mod exports;
mod jsonl;
mod live;
mod querylogs;
mod syslog;
mod syslog_real;
mod zeek;

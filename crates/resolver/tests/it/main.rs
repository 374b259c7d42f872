//! Integration tests: dnsight's resolver on 127.0.0.1 (port 0) in front of a real `nsd`
//! started on a free loopback port with a zone written here; real UDP/TCP clients (our own
//! sockets and `dig`). Tests that need `nsd` print a message and skip when it is missing.

mod browser;
mod dnssec;
mod encrypted;
mod forward;
mod groups;
mod harness;
mod local;
mod overrides;
mod resolve;
mod safety;
mod strategy;

pub use harness::*;

//! dnsight's event model.
//!
//! One DNS transaction (a query paired with its response) is one [`DnsEvent`]. Every source
//! (pcap, dnstap, Zeek, JSON lines, live capture, the resolver, the simulator) produces this
//! type and every consumer (engine, sinks, `--events-out`) reads it. This crate does no I/O
//! and never reads the clock.
//!
//! Attacker-controlled bytes (DNS names, TXT data) are kept in an escaped presentation form
//! ([`Name`]) that is plain printable ASCII, so they can be written to logs, CSV and JSON without
//! further escaping; HTML output must still escape `<`, `>`, `&` and quotes.

pub mod cidr;
mod event;
pub mod listfmt;
mod name;
mod partition;
mod rr;
mod time;
pub mod wire;

pub use cidr::{canonical, Cidr};
pub use event::{
    escape_text, Answer, DnsEvent, Flags, RData, Source, Transport, Verdict, VerdictAction,
};
pub use name::{Name, NameError};
pub use partition::{partition, DEFAULT_PARTITIONS};
pub use rr::{
    rcode_from_str, rcode_to_str, rtype_from_str, rtype_to_str, RCODE_NOERROR, RCODE_NXDOMAIN,
    RCODE_SERVFAIL,
};
pub use time::Ts;

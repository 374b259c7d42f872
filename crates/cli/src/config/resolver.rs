//! Config sections for the resolver (stub).

//! Config sections for the detection engine (stub).

//! Test helper (filled later).

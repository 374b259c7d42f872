//! RPZ zone rendering (to be written).

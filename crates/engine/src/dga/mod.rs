//! Lexical scoring of names: DGA probability and tunnel-likeness (stub, to be written).

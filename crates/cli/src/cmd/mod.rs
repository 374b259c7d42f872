//! One module per subcommand. Each has `Args` (clap) and `run`.
pub mod analyze;
pub mod demo;
pub mod eval;
pub mod score_names;
pub mod serve;
pub mod simulate;
pub mod train_dga;

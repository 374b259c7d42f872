//! One module per subcommand. Each has `Args` (clap) and `run`.
pub mod analyze;
pub mod client;
pub mod correlator;
pub mod demo;
pub mod eval;
pub mod intel;
pub mod notify;
pub mod score_names;
pub mod sensor;
pub mod serve;
pub mod simulate;
pub mod token;
pub mod train_dga;
pub mod user;
pub mod worker;

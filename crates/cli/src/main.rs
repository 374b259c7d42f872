//! The `dnsight` binary: command line, config, wiring of sources, engine and sinks.
//! Only this crate knows the config file format and the command line.

use clap::{Parser, Subcommand};

mod cmd;
#[allow(dead_code)]
mod config;
mod fetch;
mod summary;
mod wiring;

#[derive(Parser)]
#[command(name = "dnsight", version, about = "Per-device DNS baselines and explained alerts", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Offline: read pcap/pcapng, dnstap, Zeek dns.log or JSON lines; print a report.
    Analyze(cmd::analyze::Args),
    /// Print the probability that each name (one a line) is algorithmically generated.
    ScoreNames(cmd::score_names::Args),
    /// Generate a labeled simulated organisation's DNS traffic.
    Simulate(cmd::simulate::Args),
    /// Score alerts against simulator labels.
    Eval(cmd::eval::Args),
    /// A simulated organisation through the real pipeline.
    Demo(cmd::demo::Args),
    /// The protective resolver, passive sources, the engine.
    Serve(cmd::serve::Args),
    /// Publish the configured sources' events (or files) to NATS JetStream ([bus]); no engine.
    Sensor(cmd::sensor::Args),
    /// Analyse leased partitions of the event stream from NATS JetStream (a scaled-out deployment).
    Worker(cmd::worker::Args),
    /// The organisation-wide half of a scaled-out deployment: one active, standbys ready.
    Correlator(cmd::correlator::Args),
    /// Retrain the DGA model from labeled name lists.
    #[command(hide = true)]
    TrainDga(cmd::train_dga::Args),
    /// Validate a config file.
    CheckConfig(cmd::serve::CheckConfigArgs),
    /// Alerts through the API: list, show, ack, flag, block, unblock, resolve, note, reopen.
    Alerts(cmd::client::AlertsArgs),
    /// Devices through the API: list, show.
    Devices(cmd::client::DevicesArgs),
    /// The query log: what each device asked, when (API, or --state DIR directly).
    Queries(cmd::client::QueriesArgs),
    /// Blocks and allows through the API: list, add, rm.
    Blocks(cmd::client::BlocksArgs),
    /// API tokens in the state directory: create, list, revoke.
    Token(cmd::token::Args),
    /// Dashboard users in the state directory: add, list, rm.
    User(cmd::user::Args),
    /// Notifications: send a test to a target, list targets, see the outbox.
    Notify(cmd::notify::Args),
    /// Threat-intel feeds: check NAME..., stats, update.
    Intel(cmd::intel::Args),
    /// GeoIP databases: update.
    Geoip(cmd::intel::GeoipArgs),
}

/// Short-lived commands that print to stdout end quietly when the reader goes away
/// (`dnsight alerts list | head`), as Unix tools do, instead of failing on a broken pipe.
/// Long-running commands keep Rust's default (SIGPIPE ignored: a closed socket is an error
/// the code handles).
fn default_sigpipe() {
    // SAFETY: setting a signal disposition to SIG_DFL before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Alerts(_)
            | Command::Devices(_)
            | Command::Queries(_)
            | Command::Blocks(_)
            | Command::Token(_)
            | Command::User(_)
            | Command::Notify(_)
            | Command::ScoreNames(_)
            | Command::CheckConfig(_)
            | Command::Eval(_)
            | Command::Intel(_)
            | Command::Geoip(_)
    ) {
        default_sigpipe();
    }
    let r = match cli.command {
        Command::Analyze(a) => cmd::analyze::run(a),
        Command::ScoreNames(a) => cmd::score_names::run(a),
        Command::Simulate(a) => cmd::simulate::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Demo(a) => cmd::demo::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Sensor(a) => cmd::sensor::run(a),
        Command::Worker(a) => cmd::worker::run(a),
        Command::Correlator(a) => cmd::correlator::run(a),
        Command::TrainDga(a) => cmd::train_dga::run(a),
        Command::CheckConfig(a) => cmd::serve::check_config(a),
        Command::Alerts(a) => cmd::client::alerts(a),
        Command::Devices(a) => cmd::client::devices(a),
        Command::Queries(a) => cmd::client::queries(a),
        Command::Blocks(a) => cmd::client::blocks(a),
        Command::Token(a) => cmd::token::run(a),
        Command::User(a) => cmd::user::run(a),
        Command::Notify(a) => cmd::notify::run(a),
        Command::Intel(a) => cmd::intel::run(a),
        Command::Geoip(a) => cmd::intel::run_geoip(a),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dnsight: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

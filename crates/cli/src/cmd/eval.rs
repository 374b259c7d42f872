//! `dnsight eval`: scores alerts (JSON lines, the alert contract in PRODUCT.md) against the
//! simulator's `labels.json`: per scenario detected or not, time to detect and matched kinds;
//! overall recall, false alerts per device-day by severity, alerts on benign confounders.

use anyhow::Context;
use dnsight_sim::eval;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// labels.json written by `dnsight simulate`.
    #[arg(long)]
    pub labels: PathBuf,
    /// Alerts as JSON lines (`dnsight analyze --alerts-out`) or a JSON array.
    #[arg(long)]
    pub alerts: PathBuf,
    /// Print the full report as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let lt = std::fs::read_to_string(&a.labels)
        .with_context(|| format!("reading {}", a.labels.display()))?;
    let labels: dnsight_sim::Labels = serde_json::from_str(&lt).with_context(|| {
        format!(
            "{}: not a labels.json written by `dnsight simulate`",
            a.labels.display()
        )
    })?;
    let at = std::fs::read_to_string(&a.alerts)
        .with_context(|| format!("reading {}", a.alerts.display()))?;
    let alerts = eval::parse_alerts(&at);
    let report = eval::score(&labels, &alerts);
    if report.alerts_unparsable > 0 {
        eprintln!(
            "dnsight eval: note: {} alert lines were not usable (not JSON, or no kind/first_seen)",
            report.alerts_unparsable
        );
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", eval::render(&report));
    }
    Ok(())
}

//! `dnsight eval`: scores alerts (JSON lines, the alert contract in PRODUCT.md) against the
//! simulator's `labels.json`: per scenario detected or not, time to detect and matched kinds;
//! overall recall, false alerts per device-day by severity, alerts on benign confounders.

use anyhow::Context;
use dnsight_sim::eval;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// labels.json written by `dnsight simulate`. Repeat together with --alerts to score several
    /// runs (paired by position): the output is then a summary over the runs.
    #[arg(long, required = true)]
    pub labels: Vec<PathBuf>,
    /// Alerts as JSON lines (`dnsight analyze --alerts-out`) or a JSON array.
    #[arg(long, required = true)]
    pub alerts: Vec<PathBuf>,
    /// Print the full report as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if a.labels.len() != a.alerts.len() {
        anyhow::bail!(
            "give one --alerts file for each --labels file ({} labels, {} alerts)",
            a.labels.len(),
            a.alerts.len()
        );
    }
    let mut scored = Vec::new();
    for (lp, ap) in a.labels.iter().zip(&a.alerts) {
        let lt =
            std::fs::read_to_string(lp).with_context(|| format!("reading {}", lp.display()))?;
        let labels: dnsight_sim::Labels = serde_json::from_str(&lt).with_context(|| {
            format!(
                "{}: not a labels.json written by `dnsight simulate`",
                lp.display()
            )
        })?;
        let at =
            std::fs::read_to_string(ap).with_context(|| format!("reading {}", ap.display()))?;
        let report = eval::score(&labels, &eval::parse_alerts(&at));
        if report.alerts_unparsable > 0 {
            eprintln!(
                "dnsight eval: note: {}: {} alert lines were not usable (not JSON, or no kind/first_seen)",
                ap.display(),
                report.alerts_unparsable
            );
        }
        scored.push((labels, report));
    }
    if a.json {
        if scored.len() == 1 {
            println!("{}", serde_json::to_string_pretty(&scored[0].1)?);
        } else {
            let v: Vec<&eval::EvalReport> = scored.iter().map(|(_, r)| r).collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
    } else if scored.len() == 1 {
        print!("{}", eval::render(&scored[0].1));
    } else {
        let runs: Vec<eval::Run> = scored
            .iter()
            .map(|(l, r)| eval::Run {
                labels: l,
                report: r,
            })
            .collect();
        print!("{}", eval::render_summary(&runs));
    }
    Ok(())
}

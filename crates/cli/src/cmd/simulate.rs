//! `dnsight simulate`: writes a labeled simulated organisation's DNS traffic and the files an
//! operator would have (inventory, config, intel feed), plus `labels.json` for `dnsight eval`.

use anyhow::Context;
use dnsight_model::Ts;
use dnsight_sim::output::{self, Format};
use dnsight_sim::{SimConfig, Simulation};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Number of devices (at least 12).
    #[arg(long, default_value_t = 50)]
    pub devices: usize,
    /// Number of simulated days.
    #[arg(long, default_value_t = 10)]
    pub days: u32,
    /// Days of normal traffic before any scenario starts.
    #[arg(long, default_value_t = 7)]
    pub learn_days: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Event format: jsonl, zeek or pcap.
    #[arg(long, default_value = "jsonl")]
    pub format: Format,
    /// First simulated day (RFC 3339; default 2026-11-02T00:00:00Z, a Monday).
    #[arg(long)]
    pub start: Option<String>,
    /// MaxMind-format database: answers land in the countries it says.
    #[arg(long)]
    pub geoip: Option<PathBuf>,
    /// Real DGA families (`family,variant,domain,...` CSV) for the DGA scenario.
    #[arg(long)]
    pub dga_file: Option<PathBuf>,
    /// Normal traffic only, no attacks or confounders.
    #[arg(long)]
    pub no_scenarios: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let t0 = std::time::Instant::now();
    let start = match &a.start {
        Some(s) => Ts::parse(s).with_context(|| {
            format!("--start {s:?}: expected RFC 3339, e.g. 2026-11-02T00:00:00Z")
        })?,
        None => dnsight_sim::DEFAULT_START,
    };
    let cfg = SimConfig {
        devices: a.devices,
        days: a.days,
        learn_days: a.learn_days,
        seed: a.seed,
        start,
        geoip: a.geoip.clone(),
        dga_file: a.dga_file.clone(),
        scenarios: !a.no_scenarios,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(cfg)?;
    for n in &sim.notes {
        eprintln!("dnsight simulate: note: {n}");
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    output::write_operator_files(&sim, &a.out)
        .with_context(|| format!("writing files in {}", a.out.display()))?;
    let path = a.out.join(a.format.file_name());
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let stats = match a.format {
        Format::Jsonl => sim.run(|e| {
            w.write_all(e.to_json_line().as_bytes())?;
            w.write_all(b"\n")
        })?,
        Format::Zeek => {
            let open = sim.labels.start.to_rfc3339();
            w.write_all(
                output::zeek_header(open.replace(['T', ':'], "-").get(..19).unwrap_or("-"))
                    .as_bytes(),
            )?;
            let mut n = 0u64;
            let st = sim.run(|e| {
                n += 1;
                w.write_all(output::zeek_line(e, n).as_bytes())?;
                w.write_all(b"\n")
            })?;
            let close = sim.labels.end.to_rfc3339();
            writeln!(
                w,
                "#close\t{}",
                close.replace(['T', ':'], "-").get(..19).unwrap_or("-")
            )?;
            st
        }
        Format::Pcap => {
            let mut pw = output::PcapOut::new(&mut w)?;
            let st = sim.run(|e| pw.write(e))?;
            if pw.skipped > 0 {
                eprintln!("dnsight simulate: note: {} events could not be encoded as packets and were left out", pw.skipped);
            }
            st
        }
    };
    w.flush()?;
    let secs = t0.elapsed().as_secs_f64();
    let attacks = sim.labels.scenarios.iter().filter(|s| !s.benign).count();
    println!(
        "wrote {} events ({} devices x {} days, {} attack events) to {} in {:.1}s; {} attack scenarios and {} benign confounders in labels.json",
        stats.events,
        stats.devices,
        stats.days,
        stats.attack_events,
        path.display(),
        secs,
        attacks,
        sim.labels.scenarios.len() - attacks
    );
    println!(
        "operator files: inventory.csv dnsight.toml intel.txt (learning ends {})",
        sim.labels.learn_until
    );
    Ok(())
}

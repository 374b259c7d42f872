//! `dnsight analyze`: run the pipeline over files and print a report.
//!
//! The events go through the same pipeline as `serve` (driven from this thread). With
//! `--state DIR` the baselines persist between runs and the alerts land in the triage store
//! (`dnsight alerts` can act on them once `serve` runs on the same state). Replaying input the state already
//! holds is skipped (a device's events at or before its latest event in the state count as
//! `already_in_state`, and the run says so), so running the same file twice does not count it
//! twice; `--replay` feeds such events anyway.

use crate::summary::{InputReport, Summary};
use anyhow::Context;
use dnsight_ingest::{IngestOptions, IngestStats};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
pub struct Args {
    /// Input files (`-` for stdin): pcap, pcapng, dnstap (Frame Streams), Zeek dns.log (TSV or
    /// JSON), dnsight JSON lines, or a DNS query log (BIND, Unbound, dnsmasq/Pi-hole, Windows
    /// DNS debug log, Route 53 Resolver, ...: see README); the format is sniffed from the
    /// content, `.gz` is unwrapped.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Write every event as a JSON line (dnsight's event schema) to this file (`-` = stdout).
    #[arg(long, value_name = "FILE")]
    pub events_out: Option<PathBuf>,
    /// Report format printed at the end (to stdout).
    #[arg(long, value_enum, default_value = "text")]
    pub report: ReportFormat,
    /// Extra UDP/TCP ports to treat as DNS in captures (53 always is). Repeatable, or comma-separated.
    #[arg(long = "dns-port", value_name = "PORT", value_delimiter = ',')]
    pub dns_ports: Vec<u16>,
    /// Seconds of event time after which an unanswered query is reported without a response.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub pair_timeout: u32,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Read every input as this format instead of sniffing it (e.g. `dnsmasq`, `windows-dns`,
    /// `route53-resolver`; the list is in README).
    #[arg(long, value_name = "NAME")]
    pub format: Option<String>,
    /// Time zone of query-log timestamps that carry none (BIND, syslog, Windows DNS debug
    /// log): an IANA name such as `Europe/Paris`, or `local`. Default UTC.
    #[arg(long, value_name = "TZ")]
    pub log_tz: Option<String>,
    #[command(flatten)]
    pub engine: crate::config::engine::EngineFlags,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut opts = IngestOptions {
        pair_timeout_secs: args.pair_timeout,
        format: args
            .format
            .as_deref()
            .map(crate::config::resolver::parse_format)
            .transpose()?,
        ..Default::default()
    };
    if let Some(tz) = &args.log_tz {
        opts.log_tz = crate::config::resolver::parse_log_tz(tz)?;
    }
    for p in &args.dns_ports {
        if !opts.dns_ports.contains(p) {
            opts.dns_ports.push(*p);
        }
    }
    let mut events_out: Option<Box<dyn Write>> = match &args.events_out {
        None => None,
        Some(p) if p.as_os_str() == "-" => {
            Some(Box::new(std::io::BufWriter::new(std::io::stdout().lock())))
        }
        Some(p) => Some(Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        ))),
    };
    if let Some(p) = &args.engine.config {
        // A typo in a section name is an error, whichever part of dnsight owns the section.
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("cannot read config file {}", p.display()))?;
        crate::config::resolver::check_top_level(&text, p, crate::config::ALL_SECTIONS)?;
    }
    let (engine_cfg, state_dir) = crate::config::engine::build(&args.engine)?;
    let engine = crate::wiring::open_engine(engine_cfg, state_dir.as_deref())?;
    for n in engine.notices() {
        eprintln!("dnsight: note: {n}");
    }
    // the same pipeline as `serve`, driven from this thread: alerts go to the triage store
    // (with --state) and through the one output throttle to --alerts-out
    let store = match &state_dir {
        Some(d) => Some(crate::wiring::open_store(
            d,
            crate::config::store::load(args.engine.config.as_deref())?.as_deref(),
        )?),
        None => None,
    };
    // with --state every transaction also goes to the query log (`dnsight queries`)
    let qlog = match (
        &state_dir,
        crate::config::querylog::load(args.engine.config.as_deref())?,
    ) {
        (Some(d), Some(c)) => Some(
            dnsight_triage::QueryLog::spawn(d, &c)
                .map_err(|e| anyhow::anyhow!("opening the query log: {e}"))?,
        ),
        _ => None,
    };
    // offline, --alerts-out is a report: the final state of every alert, once, at the end
    let out = dnsight_pipeline::Outputs::default();
    let mut pipeline = crate::wiring::build_pipeline(
        engine,
        store,
        out,
        dnsight_pipeline::PipelineConfig {
            collect: true,
            persistent: state_dir.is_some(),
            ..Default::default()
        },
    )?;
    let progress = !args.no_progress && std::io::stderr().is_terminal();
    let mut summary = Summary::default();
    let mut total = IngestStats::default();
    let mut inputs = Vec::new();
    let mut failures = 0;
    let mut batch = Vec::with_capacity(4096);
    for path in &args.inputs {
        let shown = path.display().to_string();
        let (format, mut reader) = match dnsight_ingest::open_path_detect(path, &opts) {
            Ok(r) => r,
            Err(e) => {
                failures += 1;
                eprintln!("dnsight: {e}");
                inputs.push(InputReport {
                    path: shown,
                    format: "-".into(),
                    events: 0,
                    rejected: 0,
                    lacks: String::new(),
                    error: Some(e.to_string()),
                });
                continue;
            }
        };
        let bar = progress.then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {prefix} {human_pos} events ({per_sec}) {elapsed}",
                )
                .expect("static template"),
            );
            b.set_prefix(shown.clone());
            b
        });
        let mut error = None;
        let mut events = 0u64;
        loop {
            batch.clear();
            let more = match reader.next_batch(&mut batch) {
                Ok(m) => m,
                Err(e) => {
                    // A reader error mid-file (I/O): keep what was read, report it, go on.
                    eprintln!("dnsight: {shown}: {e}");
                    error = Some(e.to_string());
                    failures += 1;
                    false
                }
            };
            pipeline.observe(&batch);
            // after every batch, not on wall time: which alerts are handed out (an alert that
            // reached the minimum severity at a flush stays handed out) must depend on the
            // input alone, not on how fast the machine ran it
            pipeline.tick();
            for ev in &batch {
                summary.observe(ev);
                if let Some((q, _)) = &qlog {
                    q.log_blocking(ev);
                }
                if let Some(w) = events_out.as_mut() {
                    serde_json::to_writer(&mut *w, ev).context("writing events")?;
                    w.write_all(b"\n").context("writing events")?;
                }
            }
            events += batch.len() as u64;
            if let Some(b) = &bar {
                b.set_position(events);
            }
            if !more {
                break;
            }
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let st = reader.stats();
        inputs.push(InputReport {
            path: shown,
            format: format.name().to_string(),
            lacks: format.lacks().to_string(),
            events,
            rejected: st.rejected_total(),
            error,
        });
        total.merge(st);
    }
    if let Some(mut w) = events_out {
        w.flush().context("writing events")?;
    }
    if let Some((_, w)) = qlog {
        let s = w.close();
        if s.dropped > 0 {
            eprintln!(
                "dnsight: query log: {} transactions could not be written (see the errors above)",
                s.dropped
            );
        }
    }
    pipeline.finish();
    let st = pipeline.stats();
    if st.save_errors > 0 {
        anyhow::bail!("saving the state failed (see the error above)");
    }
    let alerts = pipeline.collected();
    let engine_stats = st.engine;
    if let Some(p) = &args.engine.alerts_out {
        let mut w = crate::wiring::open_alerts_out_truncate(p)?;
        for a in &alerts {
            serde_json::to_writer(&mut w, a).context("writing alerts")?;
            w.write_all(b"\n").context("writing alerts")?;
        }
        w.flush().context("writing alerts")?;
    }
    if let Some(&n) = engine_stats.skipped.get("already_in_state") {
        // Replay safety (see README "Run offline"): say plainly that input was not re-counted.
        let dir = state_dir.as_deref().unwrap_or(std::path::Path::new("?"));
        let what = if engine_stats.events == 0 {
            "all input was already in the state: nothing was added"
        } else {
            "the rest was new and was added"
        };
        eprintln!(
            "dnsight: note: {n} events at or before their device's latest event in the state were skipped as already_in_state ({} has them); {what}. Use --replay to feed them again.",
            dir.display()
        );
    }
    let report = summary.report(&total, inputs);
    // With `--events-out -` the events own stdout; the report goes to stderr.
    let events_on_stdout = args
        .events_out
        .as_deref()
        .is_some_and(|p| p.as_os_str() == "-")
        || args
            .engine
            .alerts_out
            .as_deref()
            .is_some_and(|p| p.as_os_str() == "-");
    let mut out: Box<dyn Write> = if events_on_stdout {
        Box::new(std::io::stderr().lock())
    } else {
        Box::new(std::io::stdout().lock())
    };
    match args.report {
        ReportFormat::Text => {
            out.write_all(report.render_text().as_bytes())?;
            out.write_all(b"\n")?;
            out.write_all(dnsight_engine::render_text_report(&alerts, &engine_stats).as_bytes())?;
        }
        ReportFormat::Json => {
            let full =
                serde_json::json!({ "ingest": report, "engine": engine_stats, "alerts": alerts });
            serde_json::to_writer_pretty(&mut out, &full)?;
            out.write_all(b"\n")?;
        }
    }
    if failures > 0 && failures == args.inputs.len() {
        anyhow::bail!("no input could be read (see the errors above); give pcap, pcapng, dnstap, Zeek dns.log or dnsight JSON-lines files, or - for stdin");
    }
    Ok(())
}

//! `dnsight demo`: a simulated organisation through the real engine, for a newcomer's first
//! minute. It writes the operator files a real site would have (config, inventory, intel feed),
//! builds the engine from that config exactly as `dnsight analyze` does, feeds it the simulated
//! past days (learning), then plays the next day "live" at `--speed` simulated seconds per real
//! second, printing each explained alert as the engine raises it. Attacks and benign surprises
//! are injected by the simulator; at the end the demo lists what was injected, so the alerts can
//! be checked against the truth.

use anyhow::Context;
use dnsight_engine::Engine;
use dnsight_sim::{SimConfig, Simulation};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Devices in the simulated organisation (at least 12).
    #[arg(long, default_value_t = 30)]
    pub devices: usize,
    /// Simulated seconds per real second in the live part (0 = as fast as possible).
    #[arg(long, default_value_t = 300.0)]
    pub speed: f64,
    /// Stop after this many real seconds (default: when the simulated live day ends).
    #[arg(long)]
    pub duration: Option<f64>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Days of simulated history the engine learns from before the live part.
    #[arg(long, default_value_t = 7)]
    pub history_days: u32,
    /// MaxMind-format database for answer countries (simulator and engine). Default: the
    /// country database `dnsight geoip update` downloaded to ~/.cache/dnsight, if there.
    #[arg(long)]
    pub geoip: Option<PathBuf>,
    /// Print alerts of at least this severity (info, low, medium, high, critical); all are counted.
    #[arg(long, default_value = "medium")]
    pub min_severity: String,
    /// Serve the HTTP API here (with an admin token printed at start), so `dnsight alerts
    /// list` works from a second terminal; `off` to skip.
    #[arg(long, default_value = "127.0.0.1:8053")]
    pub api: String,
    /// Also serve the protective resolver here, so you can `dig @127.0.0.1 -p 5380 example.com`:
    /// your queries join the simulated traffic (at the current simulated time). `off` to skip.
    #[arg(long, default_value = "127.0.0.1:5380")]
    pub listen: String,
    /// Upstream resolver for `--listen` (default: the first nameserver in /etc/resolv.conf).
    #[arg(long)]
    pub upstream: Option<std::net::SocketAddr>,
    /// Where to write the demo's config, inventory, intel feed and labels (default: a new
    /// directory under the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Makes engine text safe for a terminal (names are escaped already; this is belt and braces).
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Hands the resolver's events to the demo loop (dropped when the loop falls behind).
/// The demo resolver's events: stamped with the current simulated time (so your own queries
/// join the simulated day), echoed, and fed to the pipeline.
struct DemoSink {
    producer: dnsight_pipeline::Producer,
    now: std::sync::Arc<std::sync::atomic::AtomicI64>,
    meter: dnsight_pipeline::SourceMeter,
}

impl dnsight_resolver::EventSink for DemoSink {
    fn event(&mut self, ev: &dnsight_model::DnsEvent) {
        let mut ev = ev.clone();
        ev.ts = dnsight_model::Ts(self.now.load(std::sync::atomic::Ordering::Relaxed));
        println!(
            "[{}] (you)    {} asked for {}",
            hhmm(ev.ts),
            ev.client,
            clean(ev.qname.as_str())
        );
        self.meter.events(1);
        let _ = self.producer.send(vec![ev]);
    }
}

fn system_upstream() -> Option<std::net::SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| std::net::SocketAddr::new(ip, 53))
        .next()
}

/// Starts the resolver when asked; failures are notes, not errors (the demo works without it).
fn start_resolver(
    a: &Args,
    out: &mut impl Write,
    sink: DemoSink,
) -> std::io::Result<Option<dnsight_resolver::Resolver>> {
    if a.listen.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let listen: std::net::SocketAddr = match a.listen.parse() {
        Ok(l) => l,
        Err(_) => {
            writeln!(
                out,
                "  resolver: --listen {:?} is not an address:port; running without it",
                a.listen
            )?;
            return Ok(None);
        }
    };
    let Some(up) = a.upstream.or_else(system_upstream) else {
        writeln!(
            out,
            "  resolver: no upstream (give --upstream IP:53); running without it"
        )?;
        return Ok(None);
    };
    let cfg = dnsight_resolver::ResolverConfig {
        listen: vec![listen],
        upstreams: vec![dnsight_resolver::UpstreamSpec::udp(up)],
        udp_workers: 1,
        ..Default::default()
    };
    match dnsight_resolver::Resolver::start(cfg, Box::new(sink)) {
        Ok(r) => {
            let addr = r.udp_addrs().first().copied().unwrap_or(listen);
            writeln!(
                out,
                "  resolver: serving on {addr} (upstream {up}); try: dig @{} -p {} example.com",
                addr.ip(),
                addr.port()
            )?;
            Ok(Some(r))
        }
        Err(e) => {
            writeln!(out, "  resolver: not started ({e}); running without it")?;
            Ok(None)
        }
    }
}

/// Feeds queries that reached the demo's resolver to the engine, at simulated time `now`.
fn hhmm(ts: dnsight_model::Ts) -> String {
    let t = ts.to_rfc3339();
    t.get(5..16).unwrap_or(&t).replace('T', " ")
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if a.history_days == 0 {
        anyhow::bail!(
            "--history-days must be at least 1 (the engine needs something to learn from)"
        );
    }
    if !(a.speed >= 0.0 && a.speed.is_finite()) {
        anyhow::bail!("--speed must be a number >= 0 (0 = as fast as possible)");
    }
    let min_sev = ["info", "low", "medium", "high", "critical"]
        .iter()
        .position(|s| s.eq_ignore_ascii_case(&a.min_severity))
        .with_context(|| {
            format!(
                "--min-severity {:?}: expected info, low, medium, high or critical",
                a.min_severity
            )
        })? as u8;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("dnsight-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let cfg = SimConfig {
        devices: a.devices,
        days: a.history_days + 1,
        learn_days: a.history_days,
        seed: a.seed,
        // the free country database, once `dnsight geoip update` has downloaded it
        geoip: a.geoip.clone().or_else(crate::cmd::intel::downloaded_geoip),
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(cfg)?;
    dnsight_sim::output::write_operator_files(&sim, &dir)
        .with_context(|| format!("writing {}", dir.display()))?;
    let flags = crate::config::engine::EngineFlags {
        config: Some(dir.join("dnsight.toml")),
        ..Default::default()
    };
    let (engine_cfg, _) = crate::config::engine::build(&flags)?;
    let mut engine = Engine::new(engine_cfg);
    let out = std::io::stdout();
    let mut out = out.lock();
    writeln!(
        out,
        "dnsight demo: a simulated organisation of {} devices (workstations, servers, databases, IoT, domain controllers, mail)",
        sim.org.devices.len()
    )?;
    writeln!(out, "  config, inventory and intel feed: {}", dir.display())?;
    for n in sim.notes.iter().filter(|n| !n.contains("dga-file")) {
        writeln!(out, "  note: {n}")?;
    }
    for n in engine.notices() {
        writeln!(out, "  engine: {n}")?;
    }
    out.flush()?;

    // the query log, as `serve --state` keeps it: the dashboard's charts and query-log page
    // read it (its writer thread writes while the engine learns)
    let (qlog, qwriter) =
        dnsight_triage::QueryLog::spawn(&dir, &dnsight_triage::QueryLogConfig::default())
            .map_err(|e| anyhow::anyhow!("opening the query log in {}: {e}", dir.display()))?;

    // 1. history: the engine learns
    let t0 = Instant::now();
    let mut updates = Vec::new();
    for d in 0..a.history_days {
        let day = sim.day(d);
        for e in &day {
            engine.observe(e);
            qlog.log_blocking(e);
        }
        let date = day.first().map(|e| e.ts.to_rfc3339()).unwrap_or_default();
        writeln!(
            out,
            "  learning: day {}/{} {}: {} events",
            d + 1,
            a.history_days,
            date.get(..10).unwrap_or(""),
            day.len()
        )?;
    }
    engine.drain_updates(&mut updates);
    let during_learning = updates.len();
    updates.clear();
    let st = engine.stats();
    writeln!(
        out,
        "baselines learned in {:.1}s: {} events, {} devices, {} destinations, {} (device, destination) entries; {} alerts while learning",
        t0.elapsed().as_secs_f64(),
        st.events,
        st.devices,
        st.destinations,
        st.baseline_entries,
        during_learning
    )?;

    // the live part runs through the same pipeline as `serve`: the triage store in the demo
    // directory, the API, and the resolver's blocks
    let min_sev = dnsight_engine::Severity::ALL[min_sev as usize];
    let mut store = dnsight_triage::SqliteStore::open(&dir)
        .with_context(|| format!("opening the triage store in {}", dir.display()))?;
    let api_listen = if a.api.eq_ignore_ascii_case("off") {
        None
    } else {
        Some(crate::config::api::parse_listen(&a.api).context("--api")?)
    };
    let token = if api_listen.is_some() {
        use dnsight_triage::TriageStore;
        let now = dnsight_pipeline::now_secs();
        let name = format!("demo-admin-{}", std::process::id());
        Some(
            store
                .create_token(&name, dnsight_triage::Role::Admin, None, "demo", now)
                .context("creating the demo's admin token")?
                .1,
        )
    } else {
        None
    };
    // a dashboard user (replaced when the demo directory is reused)
    let dashboard_password = if api_listen.is_some() {
        Some(
            crate::cmd::user::add_generated(
                &mut store,
                "demo",
                dnsight_triage::Role::Admin,
                true,
                "demo",
            )
            .context("creating the demo's dashboard user")?,
        )
    } else {
        None
    };
    let printed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let shown = printed.clone();
    let on_alert = move |al: &dnsight_engine::Alert, change: dnsight_triage::Change| {
        use dnsight_triage::Change;
        let note = match change {
            Change::New => "",
            Change::Escalated => "  (escalated)",
            Change::Grew => "  (more devices)",
            Change::Reopened => "  (reopened)",
            Change::Updated => return,
        };
        let who = match &al.device_name {
            Some(n) => format!("{} ({})", clean(n), clean(&al.device)),
            None => clean(&al.device),
        };
        let dest = if al.destination.is_empty() {
            String::new()
        } else {
            format!(" -> {}", clean(&al.destination))
        };
        let mut o = std::io::stdout().lock();
        let _ = writeln!(
            o,
            "[{}] {:<8} {:<16} {}{dest}{note}\n    {}\n    id {}",
            hhmm(al.last_seen),
            al.severity.as_str().to_uppercase(),
            al.kind.as_str(),
            who,
            clean(&al.summary),
            al.id
        );
        let _ = o.flush();
        shown.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    let slot = crate::wiring::OverrideSlot::default();
    let pipeline = crate::wiring::build_pipeline(
        engine,
        Some(Box::new(store)),
        dnsight_pipeline::Outputs {
            on_alert: Some(Box::new(on_alert)),
            on_blocks: Some(slot.sink()),
            ..Default::default()
        },
        dnsight_pipeline::PipelineConfig {
            tick: Duration::from_millis(200),
            min_output_severity: min_sev,
            ..Default::default()
        },
    )?;
    let running = dnsight_pipeline::spawn(pipeline).context("starting the pipeline")?;
    let sim_now = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(
        sim.labels.learn_until.0 + 8 * 3_600_000_000,
    ));
    let resolver = start_resolver(
        &a,
        &mut out,
        DemoSink {
            producer: running.producer(),
            now: sim_now.clone(),
            meter: running.producer().meter("resolver", "resolver"),
        },
    )?
    .map(std::sync::Arc::new);
    let resolver_meter = running.producer().meter("resolver", "resolver");
    match &resolver {
        Some(r) => {
            slot.attach(r);
            crate::wiring::probe_resolver(&resolver_meter, r);
        }
        None => resolver_meter.down(Some("not started (--listen)".into())),
    }
    let api = match api_listen {
        Some(listen) => match dnsight_api::start_mounted(
            dnsight_api::ApiConfig {
                listen,
                tls: None,
                rpz_clients: Vec::new(),
                metrics_public: false,
                rpz_zone: "rpz.dnsight.".into(),
                intake: None,
                live: Default::default(),
            },
            running.handle(),
            dir.clone(),
            Some(dnsight_web::mount(Some(dir.clone()))),
        ) {
            Ok(s) => {
                let url = format!("http://{}", s.addr());
                writeln!(
                    out,
                    "  dashboard: {url}/ui/  user demo, password {}",
                    dashboard_password.as_deref().unwrap_or("")
                )?;
                writeln!(
                    out,
                    "  API: {url}  (admin token below; in a second terminal:)"
                )?;
                writeln!(
                    out,
                    "    export DNSIGHT_SERVER={url} DNSIGHT_TOKEN={}",
                    token.as_deref().unwrap_or("")
                )?;
                writeln!(out, "    dnsight alerts list        # then: dnsight alerts ack ID --scope device, block, resolve ...")?;
                Some(s)
            }
            Err(e) => {
                writeln!(
                    out,
                    "  API: not started ({e}); pass --api ADDR:PORT to use another address"
                )?;
                None
            }
        },
        None => None,
    };

    let live_day = sim.day(a.history_days);
    let live_from = sim.labels.learn_until.0 + 8 * 3_600_000_000;
    writeln!(
        out,
        "live: {} from 08:00 at {}x (simulated seconds per real second); alerts appear as the engine raises them\n",
        sim.labels.learn_until.to_rfc3339().get(..10).unwrap_or(""),
        a.speed
    )?;
    out.flush()?;
    drop(out);
    let start = Instant::now();
    let deadline = a
        .duration
        .map(|d| start + Duration::from_secs_f64(d.max(0.0)));
    let producer = running.producer();
    let sim_meter = producer.meter("simulator", "simulator");
    let send = |b: Vec<dnsight_model::DnsEvent>| {
        sim_meter.events(b.len() as u64);
        producer.send(b)
    };
    let mut batch: Vec<dnsight_model::DnsEvent> = Vec::new();
    let mut stopped = false;
    let mut reached = i64::MIN;
    for e in &live_day {
        if e.ts.0 > live_from && a.speed > 0.0 {
            let due = start + Duration::from_secs_f64((e.ts.0 - live_from) as f64 / 1e6 / a.speed);
            let until = deadline.map_or(due, |d| d.min(due));
            let now = Instant::now();
            if until > now + Duration::from_millis(20) {
                // what is due so far goes to the pipeline, then wait for this event's time
                send(std::mem::take(&mut batch));
                std::thread::sleep(until - now);
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            stopped = true;
            break;
        }
        sim_now.store(e.ts.0, std::sync::atomic::Ordering::Relaxed);
        reached = reached.max(e.ts.0);
        qlog.log(e);
        batch.push(e.clone());
        if batch.len() >= 1024 {
            send(std::mem::take(&mut batch));
        }
    }
    send(batch);
    sim_meter.down(None);
    drop(producer);
    let _ = qwriter.close();
    if let Some(s) = api {
        s.shutdown();
    }
    let resolver_line = resolver.map(|r| match std::sync::Arc::try_unwrap(r) {
        Ok(r) => format!("resolver: {}", r.shutdown()),
        Err(_) => "resolver: still referenced; not shut down cleanly".to_string(),
    });
    // the pipeline prints its last alerts while it stops: take stdout only afterwards
    let mut pipeline = running.stop();
    let st = pipeline.stats().engine;
    let mut out = std::io::stdout().lock();
    if let Some(l) = resolver_line {
        writeln!(out, "{l}")?;
    }
    writeln!(
        out,
        "\n{} after {:.0}s: {} alerts shown ({} or higher); engine totals: {} events, {} alerts {:?}",
        if stopped {
            "stopped (--duration)"
        } else {
            "live day finished"
        },
        start.elapsed().as_secs_f64(),
        printed.load(std::sync::atomic::Ordering::Relaxed),
        a.min_severity.to_ascii_lowercase(),
        st.events,
        st.alerts,
        st.alerts_by_severity
    )?;
    writeln!(
        out,
        "what the simulator injected on the live day (labels.json):"
    )?;
    for s in &sim.labels.scenarios {
        if s.start.0 > reached {
            continue;
        }
        writeln!(
            out,
            "  {:<14} {:<8} {} {}: {}",
            s.kind,
            if s.benign { "benign" } else { "attack" },
            hhmm(s.start),
            s.device_names
                .first()
                .map(String::as_str)
                .unwrap_or("any device"),
            s.description
        )?;
    }
    Ok(())
}

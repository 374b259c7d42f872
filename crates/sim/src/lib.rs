//! dnsight-sim: a labeled, deterministic simulator of an organisation's DNS traffic, and the
//! scorer that measures detection quality against its labels.
//!
//! There is no public enterprise DNS data set with labels, so we simulate one: a believable
//! organisation ([`org`]) on a believable Internet ([`world`]) producing normal traffic
//! ([`traffic`]), with attacks and benign confounders injected after the learning days
//! ([`scenarios`]). The output is a stream of [`DnsEvent`]s written as JSON lines, Zeek dns.log or
//! pcap ([`output`]), plus the files an operator would have (inventory, config, intel feed) and
//! `labels.json`. [`eval`] scores an engine's alerts against those labels.
//!
//! Determinism: every random stream is seeded from the run's seed and fixed tags; nothing reads
//! the clock or depends on thread scheduling. Same seed and parameters, same bytes.

pub mod dga;
pub mod eval;
pub mod geo;
pub mod org;
pub mod output;
pub mod rng;
pub mod scenarios;
pub mod traffic;
pub mod world;

use dnsight_model::{DnsEvent, Ts};
pub use scenarios::{Labels, ScenarioLabel};
use std::path::PathBuf;
use traffic::{ClientCache, DayGen, DAY_US};

/// Default first simulated day: Monday 2026-11-02 00:00 UTC.
pub const DEFAULT_START: Ts = Ts(1_793_577_600_000_000);

/// Simulation parameters.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub devices: usize,
    pub days: u32,
    pub learn_days: u32,
    pub seed: u64,
    /// Start of the first day (rounded down to midnight UTC).
    pub start: Ts,
    pub geoip: Option<PathBuf>,
    pub dga_file: Option<PathBuf>,
    /// Synthetic domains in the catalog (besides the built-in popular ones).
    pub catalog_size: usize,
    /// New never-seen domains per day (the long tail).
    pub daily_new_domains: usize,
    /// Inject scenarios (attacks and confounders).
    pub scenarios: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            devices: 50,
            days: 10,
            learn_days: 7,
            seed: 1,
            start: DEFAULT_START,
            geoip: None,
            dga_file: None,
            catalog_size: 3000,
            daily_new_domains: 400,
            scenarios: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Geo(#[from] geo::GeoError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// A prepared simulation: the world, the organisation and the scenario plan.
pub struct Simulation {
    pub cfg: SimConfig,
    pub world: world::World,
    pub org: org::Org,
    pub plan: scenarios::Plan,
    pub labels: Labels,
    /// Notes for the user (e.g. "no GeoIP database: fixed address blocks").
    pub notes: Vec<String>,
    caches: Vec<ClientCache>,
}

/// Figures about a run.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SimStats {
    pub events: u64,
    pub attack_events: u64,
    pub devices: usize,
    pub days: u32,
}

impl Simulation {
    pub fn new(mut cfg: SimConfig) -> Result<Simulation, SimError> {
        if cfg.days == 0 {
            return Err(SimError::Config("--days must be at least 1".into()));
        }
        if cfg.scenarios && cfg.learn_days >= cfg.days {
            return Err(SimError::Config(format!(
                "--learn-days ({}) must be smaller than --days ({}) so that scenarios happen after learning",
                cfg.learn_days, cfg.days
            )));
        }
        if cfg.devices < 12 {
            return Err(SimError::Config(
                "--devices must be at least 12 (groups need members)".into(),
            ));
        }
        cfg.start = Ts(cfg.start.0 - cfg.start.0.rem_euclid(DAY_US));
        let mut notes = vec![];
        let geo = match &cfg.geoip {
            Some(p) => geo::GeoPools::from_mmdb(p)?,
            None => {
                notes.push("no --geoip database: answers use fixed address blocks per country (countries are the simulator's intent, not verified)".into());
                geo::GeoPools::builtin()
            }
        };
        let dga = match &cfg.dga_file {
            Some(p) => {
                let (set, bad) = dga::DgaSet::load(p).map_err(|e| SimError::Io {
                    path: p.display().to_string(),
                    source: e,
                })?;
                if bad > 0 {
                    notes.push(format!("{}: skipped {bad} malformed lines", p.display()));
                }
                Some(set)
            }
            None => {
                notes.push("no --dga-file: DGA scenarios use the built-in character and dictionary algorithms".into());
                None
            }
        };
        let mut world = world::World::new(cfg.seed, geo, cfg.catalog_size);
        let mut org = org::Org::build(cfg.seed, cfg.devices, &mut world);
        let plan = if cfg.scenarios {
            scenarios::plan(
                cfg.seed,
                &mut world,
                &mut org,
                cfg.start.0,
                cfg.days,
                cfg.learn_days,
                dga.as_ref(),
            )
        } else {
            scenarios::Plan {
                events: vec![],
                extra: Default::default(),
                labels: vec![],
                intel: vec![],
                off: vec![],
            }
        };
        let labels = Labels {
            seed: cfg.seed,
            devices: org.devices.len(),
            days: cfg.days,
            learn_days: cfg.learn_days,
            start: cfg.start,
            learn_until: Ts(cfg.start.0 + cfg.learn_days as i64 * DAY_US),
            end: Ts(cfg.start.0 + cfg.days as i64 * DAY_US),
            geoip: world.geo.from_mmdb,
            scenarios: plan.labels.clone(),
        };
        let caches = vec![ClientCache::default(); org.devices.len()];
        Ok(Simulation {
            cfg,
            world,
            org,
            plan,
            labels,
            notes,
            caches,
        })
    }

    /// Generates one day's events (normal traffic plus scenario events), sorted by time.
    pub fn day(&mut self, day: u32) -> Vec<DnsEvent> {
        let d0 = self.cfg.start.0 + day as i64 * DAY_US;
        let tail = traffic::daily_tail(self.cfg.seed, day, self.cfg.daily_new_domains);
        for (i, t) in tail.iter().enumerate() {
            let cc = ["US", "US", "DE", "NL", "FR", "GB"][i % 6];
            self.world
                .register_host(t, world::Hosting::Direct, cc, 3600, i % 3 == 0);
            self.world.register_host(
                &format!("www.{t}"),
                world::Hosting::Direct,
                cc,
                3600,
                i % 3 == 0,
            );
        }
        let mut out = Vec::new();
        let empty = vec![];
        for i in 0..self.org.devices.len() {
            let dev = &self.org.devices[i];
            if day < dev.active_from || !dev.inventory {
                continue;
            }
            let cache = &mut self.caches[i];
            cache.prune(d0);
            let from = out.len();
            let mut g = DayGen {
                world: &self.world,
                dev,
                cache,
                rng: rng::stream(self.cfg.seed, &[7, i as u64, day as u64]),
                out: &mut out,
                day_start: d0,
                day,
                tail: &tail,
                extra: self.plan.extra.get(&i).unwrap_or(&empty),
                session: None,
            };
            g.run();
            // a device switched off sends nothing
            for &(d, a, b) in &self.plan.off {
                if d == i {
                    let mut k = from;
                    while k < out.len() {
                        if (a..b).contains(&out[k].ts.0) {
                            out.swap_remove(k);
                        } else {
                            k += 1;
                        }
                    }
                }
            }
        }
        let lo = self.plan.events.partition_point(|e| e.ts.0 < d0);
        let hi = self.plan.events.partition_point(|e| e.ts.0 < d0 + DAY_US);
        out.extend(self.plan.events[lo..hi].iter().cloned());
        out.sort_by_key(|e| e.ts);
        out
    }

    /// Runs all days, handing each event to `sink` in time order.
    pub fn run<F: FnMut(&DnsEvent) -> std::io::Result<()>>(
        &mut self,
        mut sink: F,
    ) -> std::io::Result<SimStats> {
        let mut st = SimStats {
            devices: self.org.devices.len(),
            days: self.cfg.days,
            attack_events: self.plan.events.len() as u64,
            ..Default::default()
        };
        for d in 0..self.cfg.days {
            for e in self.day(d) {
                sink(&e)?;
                st.events += 1;
            }
        }
        Ok(st)
    }
}

//! Throughput of the simulator: `cargo run --release -p dnsight-sim --example simbench -- 300 10`
//! prints events, seconds and events per second for N devices x D days (events are serialised
//! to JSON lines and discarded, as `dnsight simulate` would write them).

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let devices = a.get(1).and_then(|x| x.parse().ok()).unwrap_or(300);
    let days = a.get(2).and_then(|x| x.parse().ok()).unwrap_or(10);
    let t0 = std::time::Instant::now();
    let mut sim = dnsight_sim::Simulation::new(dnsight_sim::SimConfig {
        devices,
        days,
        ..Default::default()
    })
    .expect("config");
    let setup = t0.elapsed().as_secs_f64();
    let mut bytes = 0usize;
    let st = sim
        .run(|e| {
            bytes += e.to_json_line().len() + 1;
            Ok(())
        })
        .expect("run");
    let s = t0.elapsed().as_secs_f64();
    println!(
        "{devices} devices x {days} days: {} events, {:.1} MB JSONL, setup {setup:.2}s, total {s:.1}s, {:.0} events/s",
        st.events,
        bytes as f64 / 1e6,
        st.events as f64 / s
    );
}

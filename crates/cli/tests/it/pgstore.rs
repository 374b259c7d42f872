//! `dnsight serve` with `[store] url` on a real PostgreSQL (started by the test in a temporary
//! directory on loopback): an alert appears through the API, `dnsight alerts ack` acts on it
//! through the API, and the rows are in PostgreSQL — not in the local SQLite file, which keeps
//! only the query log. `dnsight token create --state` finds the same store. Two `serve`s over
//! one store: a block added through the API of one reaches the resolver of the other.

use crate::triage::{
    bin, cli, dig, free_port, id, start_nsd, token, wait_alert, which, Proc, Serve, WAIT,
};
use dnsight_pgstore::testing::TestPg;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

#[test]
fn serve_on_postgres_alert_ack_row_in_postgres() {
    let gone: Vec<_> = ["nsd", "dig"].into_iter().filter(|t| !which(t)).collect();
    if !gone.is_empty() {
        eprintln!("SKIP: tools not installed: {gone:?} (scripts/test.sh installs them)");
        return;
    }
    let Some(pg) = TestPg::shared() else { return };
    let url = pg.fresh_db();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("intel.txt"), "# test feed\nc2.bad.example\n").unwrap();
    std::fs::write(
        d.join("dnsight.toml"),
        format!("[store]\nurl = \"{url}\"\n"),
    )
    .unwrap();
    let nsd = start_nsd(d);
    let (dns_port, api_port) = (free_port(), free_port());
    let mut p = Proc::spawn(
        "dnsight serve",
        bin()
            .args(["serve", "--listen", &format!("127.0.0.1:{dns_port}")])
            .arg("--upstream")
            .arg(nsd.addr.to_string())
            .arg("--config")
            .arg(d.join("dnsight.toml"))
            .arg("--state")
            .arg(d.join("state"))
            .arg("--intel")
            .arg(d.join("intel.txt"))
            .args(["--learn-days", "0"])
            .args(["--api", &format!("127.0.0.1:{api_port}")])
            .env("RUST_LOG", "info"),
    );
    p.wait_line("triage store on PostgreSQL");
    p.wait_line("API on");
    let s = Serve {
        p,
        dns: format!("127.0.0.1:{dns_port}").parse().unwrap(),
        api: format!("http://127.0.0.1:{api_port}"),
    };
    // the token is made in PostgreSQL by another process (the state dir names the store)
    let t = token(d, "analyst", "pg-e2e");
    assert_eq!(dig(s.dns, "c2.bad.example", None).1, "NOERROR");
    let intel = wait_alert(&s, &t, "threat_intel", |a| a["kind"] == "threat_intel");
    let (ok, out, err) = cli(
        &s,
        &t,
        &[
            "alerts",
            "ack",
            &id(&intel),
            "--scope",
            "device",
            "--note",
            "known",
        ],
    );
    assert!(ok, "alerts ack: {out}{err}");

    // the rows, read straight from PostgreSQL
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let r = c
        .query_one(
            "SELECT status, note FROM alerts WHERE id = $1",
            &[&id(&intel)],
        )
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "acknowledged");
    assert_eq!(r.get::<_, Option<String>>(1).as_deref(), Some("known"));
    let acts: Vec<(String, String)> = c
        .query(
            "SELECT actor, action FROM audit WHERE alert_id = $1 ORDER BY id",
            &[&id(&intel)],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(acts, vec![("pg-e2e".to_string(), "ack".to_string())]);
    let acks: i64 = c
        .query_one(
            "SELECT COUNT(*) FROM acks WHERE alert_id = $1",
            &[&id(&intel)],
        )
        .unwrap()
        .get(0);
    assert_eq!(acks, 1);
    let tokens: i64 = c
        .query_one("SELECT COUNT(*) FROM tokens WHERE name = 'pg-e2e'", &[])
        .unwrap()
        .get(0);
    assert_eq!(tokens, 1);
    // the local SQLite file holds no alerts (only the query log)
    let local = rusqlite_alerts(&d.join("state"));
    assert_eq!(local, 0, "alerts went to PostgreSQL, not the SQLite file");
    // the list the API serves is PostgreSQL's
    let (ok, out, err) = cli(
        &s,
        &t,
        &["alerts", "list", "--json", "--status", "acknowledged"],
    );
    assert!(ok && out.contains(&id(&intel)), "{out}{err}");
    drop(s);
}

fn rusqlite_alerts(state: &std::path::Path) -> i64 {
    use dnsight_triage::TriageStore;
    let st = dnsight_triage::SqliteStore::open(state).unwrap();
    st.list_alerts(&dnsight_triage::AlertFilter::default())
        .unwrap()
        .1 as i64
}

/// `dnsight serve` with `--config cfg` and its own state directory `state`.
fn serve_with(cfg: &Path, state: &Path, upstream: SocketAddr) -> Serve {
    let (dns_port, api_port) = (free_port(), free_port());
    let mut p = Proc::spawn(
        "dnsight serve",
        bin()
            .args(["serve", "--listen", &format!("127.0.0.1:{dns_port}")])
            .arg("--upstream")
            .arg(upstream.to_string())
            .arg("--config")
            .arg(cfg)
            .arg("--state")
            .arg(state)
            .args(["--learn-days", "0"])
            .args(["--api", &format!("127.0.0.1:{api_port}")])
            .env("RUST_LOG", "info"),
    );
    p.wait_line("triage store on PostgreSQL");
    p.wait_line("API on");
    Serve {
        p,
        dns: format!("127.0.0.1:{dns_port}").parse().unwrap(),
        api: format!("http://127.0.0.1:{api_port}"),
    }
}

/// Asks `s` for `name` until the answer's status is `want` (the other resolver learns the
/// change at its next resync with the store, every 2 s).
fn wait_status(s: &Serve, name: &str, want: &str, what: &str) {
    let end = Instant::now() + WAIT;
    loop {
        let got = dig(s.dns, name, None).1;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < end,
            "{what}: {name} still answers {got} (want {want}) after {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn two_serves_on_one_postgres_a_block_through_one_reaches_the_other() {
    let gone: Vec<_> = ["nsd", "dig"].into_iter().filter(|t| !which(t)).collect();
    if !gone.is_empty() {
        eprintln!("SKIP: tools not installed: {gone:?} (scripts/test.sh installs them)");
        return;
    }
    let Some(pg) = TestPg::shared() else { return };
    let url = pg.fresh_db();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = d.join("dnsight.toml");
    std::fs::write(&cfg, format!("[store]\nurl = \"{url}\"\n")).unwrap();
    let nsd = start_nsd(d);
    // two resolvers of one deployment: their own state directories, one triage store
    let a = serve_with(&cfg, &d.join("state"), nsd.addr);
    let b = serve_with(&cfg, &d.join("state-b"), nsd.addr);
    let t = token(d, "analyst", "pg-two");
    assert_eq!(dig(b.dns, "www.marker.example", None).1, "NOERROR");

    // blocked through A's API: B answers by the block policy soon after
    let (ok, out, err) = cli(
        &a,
        &t,
        &["blocks", "add", "www.marker.example", "--scope", "all"],
    );
    assert!(ok, "blocks add: {out}{err}");
    wait_status(
        &a,
        "www.marker.example",
        "NXDOMAIN",
        "A, which took the block",
    );
    wait_status(&b, "www.marker.example", "NXDOMAIN", "B, beside A");
    assert_eq!(dig(b.dns, "www.usual.example", None).1, "NOERROR");

    // removed through B's API this time: A follows
    let block_id = out
        .split_whitespace()
        .nth(1)
        .map(|w| w.trim_end_matches(':').to_string())
        .unwrap_or_default();
    assert!(block_id.parse::<i64>().is_ok(), "no block id in {out:?}");
    let (ok, out, err) = cli(&b, &t, &["blocks", "rm", &block_id]);
    assert!(ok, "blocks rm: {out}{err}");
    wait_status(
        &b,
        "www.marker.example",
        "NOERROR",
        "B, which removed the block",
    );
    wait_status(&a, "www.marker.example", "NOERROR", "A, beside B");
    drop((a, b));
}

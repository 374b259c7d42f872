//! A real PostgreSQL for tests and benchmarks: `initdb` in a fresh directory under the system
//! temporary directory, `pg_ctl start` on a free loopback port (as the `postgres` user when run
//! as root: PostgreSQL refuses to run as root), a database per caller. A watchdog process stops
//! the server and removes the directory when the test process ends, however it ends.
//!
//! When the binaries are missing, [`TestPg::start`] returns `None` after a loud message, unless
//! `DNSIGHT_REQUIRE_PG` is set (`scripts/test.sh` sets it): then it panics, so CI cannot skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// A running PostgreSQL server.
pub struct TestPg {
    dir: PathBuf,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    next_db: AtomicU64,
    create_lock: Mutex<()>,
}

fn find_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Ok(rd) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut v: Vec<PathBuf> = rd.flatten().map(|e| e.path().join("bin")).collect();
        v.sort();
        v.reverse();
        dirs.extend(v);
    }
    dirs.into_iter()
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    l.local_addr().expect("local addr").port()
}

fn id_of(flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .expect("running id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| {
            panic!("there is no `postgres` user to run PostgreSQL as (running as root)")
        })
}

impl TestPg {
    /// The server of this test process (started on first use).
    pub fn shared() -> Option<&'static TestPg> {
        static PG: OnceLock<Option<TestPg>> = OnceLock::new();
        PG.get_or_init(|| TestPg::start(false)).as_ref()
    }

    /// Starts a server of its own (`fsync`: PostgreSQL's durable default; off makes tests
    /// faster). None when the binaries are absent and `DNSIGHT_REQUIRE_PG` is unset.
    pub fn start(fsync: bool) -> Option<TestPg> {
        let Some(bin) = find_bin() else {
            if std::env::var_os("DNSIGHT_REQUIRE_PG").is_some() {
                panic!("DNSIGHT_REQUIRE_PG is set but PostgreSQL (initdb, pg_ctl) is not installed: apt-get install postgresql");
            }
            eprintln!(
                "\n*** SKIPPED: PostgreSQL (initdb, pg_ctl) is not installed; the PostgreSQL \
                 tests did not run. Install the Debian package `postgresql` (scripts/test.sh \
                 does) or set DNSIGHT_REQUIRE_PG=1 to make this a failure. ***\n"
            );
            return None;
        };
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "dnsight-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the PostgreSQL directory");
        let as_postgres = unsafe_geteuid() == 0;
        if as_postgres {
            let (u, g) = (id_of("-u"), id_of("-g"));
            std::os::unix::fs::chown(&dir, Some(u), Some(g)).expect("chown the PostgreSQL dir");
        }
        let pg = TestPg {
            data: dir.join("data"),
            dir,
            bin,
            port: free_port(),
            as_postgres,
            next_db: AtomicU64::new(0),
            create_lock: Mutex::new(()),
        };
        pg.watchdog();
        let data = pg.data.display().to_string();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "dnsight",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync={} -c max_connections=200",
            pg.port,
            pg.dir.display(),
            if fsync { "on" } else { "off" }
        );
        let log = pg.dir.join("server.log").display().to_string();
        pg.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &opts, "start",
            ],
        );
        Some(pg)
    }

    fn cmd(&self, prog: &str) -> Command {
        let exe = self.bin.join(prog);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, prog: &str, args: &[&str]) {
        let out = self
            .cmd(prog)
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("running {prog}: {e}"));
        if !out.status.success() {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            panic!(
                "{prog} failed: {}\n{}\n{log}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Stops the server and removes its directory when this process is gone.
    fn watchdog(&self) {
        use std::os::unix::process::CommandExt;
        let stop = format!(
            "{}{} -D '{}' stop -m immediate",
            if self.as_postgres {
                "runuser -u postgres -- "
            } else {
                ""
            },
            self.bin.join("pg_ctl").display(),
            self.data.display()
        );
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            dir = self.dir.display()
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the data directory (and the server log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://dnsight@127.0.0.1:{}/{db}", self.port)
    }

    /// A new empty database; returns its URL.
    pub fn fresh_db(&self) -> String {
        let _g = self.create_lock.lock().unwrap_or_else(|e| e.into_inner());
        let name = format!("t{}", self.next_db.fetch_add(1, Ordering::Relaxed));
        let mut c = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .expect("connecting to the test PostgreSQL");
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("creating a test database");
        self.url(&name)
    }

    /// Stops the server now (`pg_ctl stop -m fast`).
    pub fn stop(&self) {
        let data = self.data.display().to_string();
        self.run("pg_ctl", &["-D", &data, "-w", "stop", "-m", "fast"]);
    }
}

impl Drop for TestPg {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let _ = self
            .cmd("pg_ctl")
            .args(["-D", &data, "stop", "-m", "immediate"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unsafe_geteuid() -> u32 {
    // the effective uid without libc: the owner of a file this process just created
    use std::os::unix::fs::MetadataExt;
    let p = std::env::temp_dir().join(format!("dnsight-uid-{}", std::process::id()));
    let _ = std::fs::write(&p, b"");
    let uid = std::fs::metadata(&p).map(|m| m.uid()).unwrap_or(1);
    let _ = std::fs::remove_file(&p);
    uid
}

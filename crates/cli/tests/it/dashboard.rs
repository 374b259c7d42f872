//! The dashboard in a real browser: Debian's Chromium, headless, driven through chromedriver
//! (WebDriver, the fantoccini client) against a real `dnsight serve` in front of a real nsd,
//! with `dig` as the DNS client. Sign in; open the newest alert; acknowledge it for the device
//! (it leaves the open list, the destination joins the device's baseline); block a destination
//! (dig gets NXDOMAIN); keyboard triage; hostile query names shown as text with no dialog; a
//! cross-origin POST refused; a viewer cannot act. Screenshots of the main pages are written to
//! the temp dir, and to `docs/screenshots/` when `DNSIGHT_SCREENSHOTS=1`.

use fantoccini::{Client, ClientBuilder, Locator};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

// the same child-process harness and port picker as the triage loop's test
use super::triage::{free_port, Proc, WAIT};

fn which(tool: &str) -> Option<PathBuf> {
    let p = std::env::var_os("PATH")?;
    std::env::split_paths(&p)
        .chain(["/usr/sbin".into(), "/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join(tool))
        .find(|f| f.is_file())
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dnsight"))
}

fn start_nsd(dir: &Path) -> (Proc, SocketAddr) {
    let port = free_port();
    let d = dir.join("nsd");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("zone"),
        "$ORIGIN example.\n$TTL 300\n@ SOA ns.example. admin.example. 1 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\nc2.bad A 192.0.2.66\nwww.fresh A 192.0.2.10\nwww.one A 192.0.2.21\nwww.two A 192.0.2.22\nwww.three A 192.0.2.23\nwww.usual A 192.0.2.20\nwww.far A 81.2.69.142\n",
    )
    .unwrap();
    std::fs::write(
        d.join("nsd.conf"),
        format!(
            "server:\n ip-address: 127.0.0.1@{port}\n port: {port}\n server-count: 1\n do-ip6: no\n username: \"\"\n chroot: \"\"\n zonesdir: \"{d}\"\n database: \"\"\n zonelistfile: \"{d}/zone.list\"\n xfrdfile: \"{d}/xfrd.state\"\n xfrdir: \"{d}\"\n pidfile: \"{d}/nsd.pid\"\n logfile: \"{d}/nsd.log\"\n verbosity: 0\nremote-control:\n control-enable: no\nzone:\n name: \"example\"\n zonefile: \"zone\"\n",
            d = d.display()
        ),
    )
    .unwrap();
    let p = Proc::spawn(
        "nsd",
        Command::new("nsd")
            .arg("-d")
            .arg("-c")
            .arg(d.join("nsd.conf")),
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let end = Instant::now() + WAIT;
    while dig(addr, "www.usual.example").1 != "NOERROR" {
        assert!(Instant::now() < end, "nsd did not answer on {addr}");
        std::thread::sleep(Duration::from_millis(100));
    }
    (p, addr)
}

/// `dig` once: (answer lines, status).
fn dig(server: SocketAddr, name: &str) -> (String, String) {
    let o = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string()])
        .args(["+tries=1", "+time=2", "+noall", "+answer", "+comments"])
        .arg(name)
        .arg("A")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("NO-ANSWER")
        .to_string();
    (text, status)
}

fn user_add(state: &Path, name: &str, role: &str) -> String {
    let o = bin()
        .args(["user", "add", name, "--role", role, "--state"])
        .arg(state)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "user add: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string()
}

fn token(state: &Path) -> String {
    let o = bin()
        .args([
            "token", "create", "--role", "viewer", "--name", "poll", "--state",
        ])
        .arg(state)
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string()
}

/// Every alert, through the API.
fn api_alerts(api: &str, token: &str) -> Vec<serde_json::Value> {
    let r = ureq::get(&format!("{api}/api/v1/alerts?status=all&limit=1000"))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
    v["alerts"].as_array().cloned().unwrap_or_default()
}

fn wait_alert(
    api: &str,
    token: &str,
    what: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let end = Instant::now() + WAIT;
    loop {
        let v = api_alerts(api, token);
        if let Some(a) = v.iter().find(|a| f(a)) {
            return a.clone();
        }
        assert!(
            Instant::now() < end,
            "no {what} alert within {WAIT:?}: {v:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn status_of(api: &str, token: &str, id: &str) -> String {
    api_alerts(api, token)
        .iter()
        .find(|a| a["id"] == id)
        .and_then(|a| a["status"].as_str())
        .unwrap_or("?")
        .to_string()
}

fn wait_status(api: &str, token: &str, id: &str, want: &str) {
    let end = Instant::now() + WAIT;
    loop {
        let s = status_of(api, token, id);
        if s == want {
            return;
        }
        assert!(Instant::now() < end, "alert {id} is {s}, not {want}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A page on another origin (another port) with a form that posts to the dashboard.
fn hostile_site(target: String) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut r = BufReader::new(s);
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
            }
            let body = format!(
                "<!doctype html><html><body><form id=\"f\" method=\"post\" action=\"{target}\"><input name=\"action\" value=\"flag\"><input name=\"csrf\" value=\"guess\"><button id=\"go\">go</button></form></body></html>"
            );
            let _ = write!(
                r.get_mut(),
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

struct Shots {
    dir: PathBuf,
    docs: Option<PathBuf>,
}

impl Shots {
    async fn take(&self, c: &Client, name: &str) {
        let png = c.screenshot().await.expect("screenshot");
        std::fs::write(self.dir.join(format!("{name}.png")), &png).unwrap();
        if let Some(d) = &self.docs {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join(format!("{name}.png")), &png).unwrap();
        }
    }
}

async fn browser(driver: &str, profile: &Path, dark: bool) -> Client {
    let mut args = vec![
        "--headless".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-dev-shm-usage".into(),
        "--window-size=1366,768".into(),
        format!("--user-data-dir={}", profile.display()),
    ];
    if dark {
        args.push("--force-dark-mode".into());
        args.push("--blink-settings=preferredColorScheme=0".into());
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({ "binary": "/usr/bin/chromium", "args": args }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver)
        .await
        .expect("a WebDriver session with Chromium")
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn key(c: &Client, k: &str) {
    c.find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys(k)
        .await
        .unwrap();
}

async fn sign_in(c: &Client, base: &str, user: &str, pw: &str) {
    c.goto(&format!("{base}/ui/alerts")).await.unwrap();
    // redirected to the sign-in page
    assert!(c.current_url().await.unwrap().path().ends_with("/ui/login"));
    c.find(Locator::Css("input[name=user]"))
        .await
        .unwrap()
        .send_keys(user)
        .await
        .unwrap();
    c.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(pw)
        .await
        .unwrap();
    c.find(Locator::Css("main.login button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_path(c, |p| p == "/ui/alerts", "back where the sign-in started").await;
}

/// Waits until the page's path satisfies `ok`.
async fn wait_path(c: &Client, ok: impl Fn(&str) -> bool, what: &str) {
    let end = Instant::now() + WAIT;
    loop {
        if let Ok(u) = c.current_url().await {
            if ok(u.path()) && c.find(Locator::Css("h1")).await.is_ok() {
                return;
            }
        }
        if Instant::now() >= end {
            let main = match c.find(Locator::Css("main")).await {
                Ok(m) => m.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            panic!("{what}: still at {:?}: {main}", c.current_url().await.ok());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for an element; on timeout says where the browser is and what the page says.
async fn wait_css(c: &Client, css: &str) {
    let end = Instant::now() + WAIT;
    while c.find(Locator::Css(css)).await.is_err() {
        if Instant::now() >= end {
            let main = match c.find(Locator::Css("body")).await {
                Ok(m) => m.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            panic!("no {css} at {:?}: {main}", c.current_url().await.ok());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the JS expression is true in the page.
async fn until(c: &Client, js: &str, what: &str) {
    let end = Instant::now() + WAIT;
    loop {
        let v = c
            .execute(&format!("return !!({js});"), vec![])
            .await
            .unwrap();
        if v == serde_json::Value::Bool(true) {
            return;
        }
        assert!(Instant::now() < end, "{what}: `{js}` stayed false");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn dashboard_in_a_real_browser() {
    let missing: Vec<_> = ["nsd", "dig", "chromium", "chromedriver"]
        .into_iter()
        .filter(|t| which(t).is_none())
        .collect();
    if !missing.is_empty() {
        eprintln!("SKIP: not installed: {missing:?} (scripts/test.sh installs chromium, chromium-driver, nsd, dnsutils)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let state = d.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        d.join("intel.txt"),
        "# test feed\nbad.example\nevil.example\nworse.example\n",
    )
    .unwrap();
    // a country database for the destination page's answers, a block list, and a config with
    // a passive source, detection rules, an exemption and two notification targets (one that
    // works, one whose hook URL holds a secret path and cannot be reached)
    {
        use mmdb_writer::{Value, Writer};
        let mut w = Writer::new("dnsight-test-country-asn");
        w.insert_value(
            "81.2.69.0/24".parse::<ipnet::IpNet>().unwrap(),
            Value::map([
                ("country_code", Value::from("GB")),
                ("autonomous_system_number", Value::from(64_512u32)),
            ]),
        )
        .unwrap();
        std::fs::write(d.join("geo.mmdb"), w.to_bytes().unwrap()).unwrap();
    }
    std::fs::write(d.join("ads.txt"), "ads.example\ntracker.example\n").unwrap();
    let passive = d.join("passive.jsonl");
    std::fs::write(&passive, "").unwrap();
    std::fs::write(
        d.join("serve.toml"),
        format!(
            r#"[[detection.policy]]
deny = ["casino.invalid"]
reason = "no gambling at work"

[[detection.exempt]]
groups = ["mirrors"]
destinations = ["debian.org"]
reason = "package mirror syncs"

[[source]]
kind = "jsonl"
path = "{}"

[[notify]]
name = "audit-file"
type = "file"
path = "{}"

[[notify]]
name = "team-chat"
type = "slack"
url = "http://127.0.0.1:1/services/T0001/B0002/SeCrEtHoOkPaTh"
"#,
            passive.display(),
            d.join("notified.jsonl").display()
        ),
    )
    .unwrap();
    let (_nsd, nsd_addr) = start_nsd(d);
    let (dns_port, api_port) = (free_port(), free_port());
    let mut serve = Proc::spawn(
        "dnsight serve",
        bin()
            .args(["serve", "--listen", &format!("127.0.0.1:{dns_port}")])
            .arg("--upstream")
            .arg(nsd_addr.to_string())
            .arg("--state")
            .arg(&state)
            .arg("--intel")
            .arg(d.join("intel.txt"))
            .arg("--config")
            .arg(d.join("serve.toml"))
            .arg("--blocklist")
            .arg(d.join("ads.txt"))
            .arg("--geoip")
            .arg(d.join("geo.mmdb"))
            .args(["--learn-days", "0"])
            .args(["--api", &format!("127.0.0.1:{api_port}")])
            .env("RUST_LOG", "info"),
    );
    // the first start without a user says how to make one
    serve.wait_line("dnsight user add NAME --role admin");
    let dns: SocketAddr = format!("127.0.0.1:{dns_port}").parse().unwrap();
    let api = format!("http://127.0.0.1:{api_port}");
    let ana = user_add(&state, "ana", "analyst");
    let vic = user_add(&state, "vic", "viewer");
    let ada = user_add(&state, "ada", "admin");
    // one event from the passive source (a query whose answer was not seen: no alert)
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&passive)
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let t = dnsight_model::Ts::from_secs(now).to_rfc3339();
        writeln!(
            f,
            "{{\"ts\":\"{t}\",\"client\":\"10.9.9.9\",\"qname\":\"www.usual.example\"}}"
        )
        .unwrap();
    }
    let tok = token(&state);

    let driver_port = free_port();
    let mut driver = Proc::spawn(
        "chromedriver",
        Command::new(which("chromedriver").unwrap()).arg(format!("--port={driver_port}")),
    );
    driver.wait_line("started successfully");
    let shots = Shots {
        dir: d.to_path_buf(),
        docs: (std::env::var("DNSIGHT_SCREENSHOTS").as_deref() == Ok("1"))
            .then(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let driver_url = format!("http://127.0.0.1:{driver_port}");
        let c = browser(&driver_url, &d.join("profile"), false).await;

        // ---- sign in
        sign_in(&c, &api, "ana", &ana).await;

        // ---- a new destination: open the newest alert, acknowledge it for the device
        assert_eq!(dig(dns, "www.fresh.example").1, "NOERROR");
        let fresh = wait_alert(&api, &tok, "new_destination", |a| {
            a["kind"] == "new_destination" && a["destination"] == "fresh.example"
        });
        let fresh_id = fresh["id"].as_str().unwrap().to_string();
        c.goto(&format!("{api}/ui/alerts?kind=new_destination&sort=first_seen")).await.unwrap();
        let first = c.find(Locator::Css("table.alerts tbody tr")).await.unwrap();
        assert_eq!(first.attr("data-id").await.unwrap().as_deref(), Some(fresh_id.as_str()), "the newest first");
        first.find(Locator::Css("a.open")).await.unwrap().click().await.unwrap();
        wait_css(&c, "section.why").await;
        assert!(text_of(&c, "h1").await.contains("New destination"));
        assert!(c.source().await.unwrap().contains("<svg"), "the evidence is drawn");
        shots.take(&c, "alert").await;
        c.find(Locator::Css("#do-ack")).await.unwrap().click().await.unwrap();
        wait_css(&c, "h1 .st.acknowledged").await;
        wait_status(&api, &tok, &fresh_id, "acknowledged");
        c.goto(&format!("{api}/ui/alerts")).await.unwrap();
        let rows = c.find_all(Locator::Css(&format!("tr[data-id='{fresh_id}']"))).await.unwrap();
        assert!(rows.is_empty(), "the acknowledged alert left the open list");
        c.goto(&format!("{api}/ui/devices/127.0.0.1")).await.unwrap();
        let row = c
            .find(Locator::Css("#baseline tr[data-dest='fresh.example']"))
            .await
            .expect("the destination is in the device's baseline");
        assert!(row.text().await.unwrap().contains("acknowledged"));
        shots.take(&c, "device").await;

        // ---- block a destination; dig gets NXDOMAIN from dnsight serve
        assert_eq!(dig(dns, "c2.bad.example").1, "NOERROR");
        let intel = wait_alert(&api, &tok, "threat_intel", |a| {
            a["kind"] == "threat_intel" && a["destination"] == "bad.example"
        });
        let intel_id = intel["id"].as_str().unwrap().to_string();
        c.goto(&format!("{api}/ui/alerts/{intel_id}")).await.unwrap();
        c.find(Locator::Css("#do-block")).await.unwrap().click().await.unwrap();
        wait_css(&c, "h1 .st.blocked").await;
        assert_eq!(dig(dns, "c2.bad.example").1, "NXDOMAIN", "blocked from the dashboard");
        assert_eq!(dig(dns, "www.usual.example").1, "NOERROR");
        c.goto(&format!("{api}/ui/policy")).await.unwrap();
        assert!(text_of(&c, "#blocks").await.contains("bad.example"));
        let lists = text_of(&c, "#lists").await;
        assert!(lists.contains("blocklist") && lists.contains("ads.txt"), "the list file: {lists}");
        let rules = text_of(&c, "#rules").await;
        assert!(rules.contains("casino.invalid") && rules.contains("no gambling at work"), "{rules}");
        let ex = text_of(&c, "#exemptions").await;
        assert!(ex.contains("group mirrors") && ex.contains("package mirror syncs"), "{ex}");
        shots.take(&c, "policy").await;

        // ---- a destination's answers with their country and network
        assert_eq!(dig(dns, "www.far.example").1, "NOERROR");
        wait_alert(&api, &tok, "far.example", |a| a["destination"] == "far.example");
        c.goto(&format!("{api}/ui/destinations/far.example")).await.unwrap();
        wait_css(&c, "#countries").await;
        let end = Instant::now() + WAIT;
        // the query log's writer commits within a second or so
        while !text_of(&c, "#countries").await.contains("GB") {
            assert!(Instant::now() < end, "no country: {}", text_of(&c, "main").await);
            tokio::time::sleep(Duration::from_millis(200)).await;
            c.refresh().await.unwrap();
            wait_css(&c, "#countries").await;
        }
        assert!(text_of(&c, "#countries").await.contains("AS64512"));
        shots.take(&c, "destination").await;

        // ---- hostile names: shown as text, no dialog, no injected element
        for q in ["<script>alert(1)</script>.evil.example", "\"><img\\032src=x\\032onerror=alert(1)>.worse.example"] {
            dig(dns, q);
        }
        let hostile = wait_alert(&api, &tok, "hostile threat_intel", |a| {
            a["kind"] == "threat_intel" && a["destination"] == "evil.example"
        });
        let hid = hostile["id"].as_str().unwrap().to_string();
        let img = wait_alert(&api, &tok, "hostile threat_intel", |a| {
            a["kind"] == "threat_intel" && a["destination"] == "worse.example"
        });
        let img_id = img["id"].as_str().unwrap().to_string();
        for page in [format!("{api}/ui/alerts?status=all"), format!("{api}/ui/alerts/{hid}"), format!("{api}/ui/alerts/{img_id}")] {
            c.goto(&page).await.unwrap();
            wait_css(&c, "h1").await;
            assert!(c.get_alert_text().await.is_err(), "no dialog opened on {page}");
            let body = text_of(&c, "main").await;
            assert!(body.contains("<script>alert") || body.contains("\"><img"), "the name is shown as text on {page}: {body}");
            assert!(c.find_all(Locator::Css("main script, main img")).await.unwrap().is_empty(), "no injected element on {page}");
        }
        assert!(text_of(&c, "main").await.contains("\"><img"), "{}", text_of(&c, "main").await);

        // ---- keyboard triage on the inbox
        for n in ["www.one.example", "www.two.example", "www.three.example"] {
            assert_eq!(dig(dns, n).1, "NOERROR");
        }
        let one = wait_alert(&api, &tok, "www.one", |a| a["destination"] == "one.example");
        let two = wait_alert(&api, &tok, "www.two", |a| a["destination"] == "two.example");
        let three = wait_alert(&api, &tok, "www.three", |a| a["destination"] == "three.example");
        c.goto(&format!("{api}/ui/alerts?kind=new_destination&sort=first_seen")).await.unwrap();
        until(&c, "document.querySelector('tr.sel')", "the first row is selected").await;
        shots.take(&c, "alerts").await;
        let sel = || async { c.find(Locator::Css("tr.sel")).await.unwrap().attr("data-id").await.unwrap().unwrap() };
        let top = sel().await;
        key(&c, "j").await;
        let second = sel().await;
        assert_ne!(top, second, "j moves down");
        key(&c, "k").await;
        assert_eq!(sel().await, top, "k moves up");
        key(&c, "a").await;
        until(&c, "document.getElementById('live').textContent.length > 0", "the script says what it did").await;
        let said = text_of(&c, "#live").await;
        assert!(said.contains("Acknowledged"), "{said}");
        wait_status(&api, &tok, &top, "acknowledged");
        until(&c, &format!("document.querySelector(\"tr[data-id='{top}']\").classList.contains('gone')"), "the row leaves").await;
        assert_eq!(sel().await, second, "the next row is selected");
        key(&c, "u").await;
        wait_status(&api, &tok, &top, "reopened");
        until(&c, &format!("document.querySelector(\"tr.sel[data-id='{top}']\")"), "the undone row is selected again").await;
        key(&c, "f").await;
        wait_status(&api, &tok, &top, "flagged");
        key(&c, "j").await;
        assert_eq!(sel().await, second);
        key(&c, "r").await;
        wait_status(&api, &tok, &second, "resolved");
        for a in [&one, &two, &three] {
            let id = a["id"].as_str().unwrap();
            assert_ne!(status_of(&api, &tok, id), "?");
        }

        // ---- screenshots of the other main pages, wide and narrow
        c.goto(&format!("{api}/ui/")).await.unwrap();
        wait_css(&c, ".cards").await;
        let src = text_of(&c, "#sources").await;
        assert!(src.contains("resolver") && src.contains("passive.jsonl"), "every source: {src}");
        assert!(!src.contains("down"), "every source is up: {src}");
        shots.take(&c, "overview").await;
        c.execute("document.getElementById('sources').scrollIntoView();", vec![]).await.unwrap();
        shots.take(&c, "overview-health").await;
        c.goto(&format!("{api}/ui/devices")).await.unwrap();
        shots.take(&c, "devices").await;
        c.goto(&format!("{api}/ui/settings")).await.unwrap();
        let targets = text_of(&c, "#targets").await;
        assert!(targets.contains("audit-file") && targets.contains("team-chat"), "{targets}");
        assert!(!c.source().await.unwrap().contains("SeCrEtHoOkPaTh"), "no hook secret on the page");
        assert!(c.find_all(Locator::Css("#targets button")).await.unwrap().is_empty(), "an analyst sends no test");
        c.set_window_size(390, 844).await.unwrap();
        c.goto(&format!("{api}/ui/alerts?status=all")).await.unwrap();
        let overflow = c
            .execute("return document.documentElement.scrollWidth <= window.innerWidth + 1;", vec![])
            .await
            .unwrap();
        assert_eq!(overflow, serde_json::Value::Bool(true), "no sideways scrolling at 390 px");
        shots.take(&c, "alerts-phone").await;
        for (page, name) in [("/ui/", "overview-phone"), ("/ui/policy", "policy-phone"), ("/ui/settings", "settings-phone")] {
            c.goto(&format!("{api}{page}")).await.unwrap();
            wait_css(&c, "h1").await;
            let fits = c
                .execute("return document.documentElement.scrollWidth <= window.innerWidth + 1;", vec![])
                .await
                .unwrap();
            assert_eq!(fits, serde_json::Value::Bool(true), "no sideways scrolling at 390 px on {page}");
            shots.take(&c, name).await;
        }
        c.set_window_size(1366, 768).await.unwrap();
        c.goto(&format!("{api}/ui/settings")).await.unwrap();
        shots.take(&c, "settings").await;

        // ---- a cross-origin POST is refused (same site, another port: the cookie goes along,
        // the origin check refuses)
        let evil = hostile_site(format!("{api}/ui/alerts/{hid}/action"));
        c.goto(&format!("http://127.0.0.1:{evil}/")).await.unwrap();
        c.find(Locator::Css("#go")).await.unwrap().click().await.unwrap();
        wait_path(&c, |p| p.starts_with("/ui/"), "the dashboard answered the cross-origin form").await;
        let h1 = text_of(&c, "h1").await;
        assert!(h1.contains("403") || c.current_url().await.unwrap().path().ends_with("/login"), "{h1}");
        assert_eq!(status_of(&api, &tok, &hid), "open", "the cross-origin POST changed nothing");

        // ---- a viewer reads but cannot act
        c.goto(&format!("{api}/ui/alerts")).await.unwrap();
        c.find(Locator::Css(".who button")).await.unwrap().click().await.unwrap();
        wait_path(&c, |p| p == "/ui/login", "signed out").await;
        sign_in(&c, &api, "vic", &vic).await;
        c.goto(&format!("{api}/ui/alerts/{hid}")).await.unwrap();
        assert!(c.find_all(Locator::Css("#do-ack, #do-block")).await.unwrap().is_empty(), "no action forms");
        let code = c
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 const csrf = document.querySelector('meta[name=csrf]').content;
                 fetch(location.pathname + '/action', {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded', 'Accept': 'application/json'},
                       body: 'csrf=' + csrf + '&action=flag'}).then(r => done(r.status));",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(code, serde_json::json!(403));
        key(&c, "f").await;
        assert_eq!(status_of(&api, &tok, &hid), "open", "the viewer changed nothing");
        c.close().await.unwrap();

        // ---- dark theme
        let dark = browser(&driver_url, &d.join("profile-dark"), true).await;
        sign_in(&dark, &api, "ada", &ada).await;
        shots.take(&dark, "alerts-dark").await;
        // ---- an admin sends a test notification to each target from Settings
        dark.goto(&format!("{api}/ui/settings")).await.unwrap();
        for (i, want) in [(0, "test sent"), (1, "test failed")] {
            let rows = dark.find_all(Locator::Css("table.targets tbody tr")).await.unwrap();
            rows[i].find(Locator::Css("button")).await.unwrap().click().await.unwrap();
            // back on Settings (post/redirect/get), the row says how the test went
            let end = Instant::now() + WAIT;
            loop {
                let row = match dark.find_all(Locator::Css("table.targets tbody tr")).await {
                    Ok(r) if r.len() > i => r[i].text().await.unwrap_or_default(),
                    _ => String::new(),
                };
                if row.contains(want) {
                    break;
                }
                assert!(Instant::now() < end, "{want}: {row}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let page = dark.source().await.unwrap();
        assert!(!page.contains("SeCrEtHoOkPaTh") && !page.contains("T0001"), "the failure does not say the hook's secret path");
        let sent = std::fs::read_to_string(d.join("notified.jsonl")).unwrap_or_default();
        assert!(sent.contains("test notification"), "the file target got the test: {sent}");
        shots.take(&dark, "settings-dark").await;
        dark.goto(&format!("{api}/ui/")).await.unwrap();
        wait_css(&dark, ".cards").await;
        shots.take(&dark, "overview-dark").await;
        let bg = dark
            .execute("return getComputedStyle(document.documentElement).backgroundColor;", vec![])
            .await
            .unwrap();
        assert_ne!(bg, serde_json::json!("rgb(247, 248, 250)"), "prefers-color-scheme: dark applies: {bg}");
        dark.close().await.unwrap();
    });
    let _ = TcpStream::connect(("127.0.0.1", api_port));
}

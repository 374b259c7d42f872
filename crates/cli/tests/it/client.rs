//! `dnsight token ...` on a real state directory, and the API client's error messages, with the
//! real binary. (The client against a running `serve` is in `triage.rs`.)

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dnsight"))
}

fn run(args: &[&str], state: Option<&std::path::Path>) -> (bool, String, String) {
    let mut c = bin();
    c.args(args);
    if let Some(s) = state {
        c.arg("--state").arg(s);
    }
    let o = c
        .env_remove("DNSIGHT_TOKEN")
        .env_remove("DNSIGHT_SERVER")
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn token_create_list_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path();
    let (ok, out, err) = run(
        &["token", "create", "--role", "analyst", "--name", "alice"],
        Some(st),
    );
    assert!(ok, "{err}");
    let secret = out.lines().last().unwrap().trim().to_string();
    assert!(
        secret.len() >= 20 && !secret.contains(' '),
        "last line is the token alone: {out:?}"
    );
    let (ok, out2, err) = run(
        &[
            "token",
            "create",
            "--role",
            "viewer",
            "--name",
            "bob",
            "--expires",
            "30d",
        ],
        Some(st),
    );
    assert!(ok, "{err}");
    assert_ne!(out2.lines().last().unwrap().trim(), secret);

    let (ok, out, err) = run(&["token", "list"], Some(st));
    assert!(ok, "{err}");
    let alice = out
        .lines()
        .find(|l| l.contains("alice"))
        .expect("alice listed");
    assert!(
        alice.contains("analyst") && alice.contains("active"),
        "{alice}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("bob") && l.contains("viewer")),
        "{out}"
    );
    assert!(!out.contains(&secret), "the secret is never listed");

    let (ok, out, err) = run(&["token", "list", "--json"], Some(st));
    assert!(ok, "{err}");
    let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(v.len(), 2);
    let bob = v.iter().find(|t| t["name"] == "bob").unwrap();
    assert!(bob["expires_at"].as_i64().is_some(), "{bob}");

    let (ok, out, err) = run(&["token", "revoke", "alice"], Some(st));
    assert!(ok, "{err}");
    assert!(out.contains("revoked") && out.contains("alice"), "{out}");
    let (_, out, _) = run(&["token", "list"], Some(st));
    let alice = out.lines().find(|l| l.contains("alice")).unwrap();
    assert!(alice.contains("revoked"), "{alice}");
    // by id
    let id = bob["id"].to_string();
    let (ok, _, err) = run(&["token", "revoke", &id], Some(st));
    assert!(ok, "{err}");

    // mistakes say what to do
    let (ok, _, err) = run(&["token", "revoke", "nobody"], Some(st));
    assert!(
        !ok && err.contains("no token") && err.contains("token list"),
        "{err}"
    );
    let (ok, _, err) = run(
        &["token", "create", "--role", "boss", "--name", "x"],
        Some(st),
    );
    assert!(!ok && err.contains("viewer"), "{err}");
    let (ok, _, err) = run(
        &[
            "token",
            "create",
            "--role",
            "admin",
            "--name",
            "x",
            "--expires",
            "2001-01-01",
        ],
        Some(st),
    );
    assert!(!ok && err.contains("past"), "{err}");
    let (ok, _, err) = run(
        &[
            "token",
            "create",
            "--role",
            "admin",
            "--name",
            "x",
            "--expires",
            "soon",
        ],
        Some(st),
    );
    assert!(!ok && err.contains("--expires"), "{err}");
    let (ok, _, err) = run(
        &["token", "create", "--role", "admin", "--name", "a\u{1b}b"],
        Some(st),
    );
    assert!(!ok && err.contains("--name"), "{err}");
    let missing = st.join("missing");
    let (ok, _, err) = run(&["token", "list"], Some(&missing));
    assert!(!ok && err.contains("--state"), "{err}");
}

#[test]
fn client_errors_say_what_to_do() {
    // nothing listens on this port
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!("http://127.0.0.1:{port}");
    let (ok, _, err) = run(&["alerts", "list", "--server", &server], None);
    assert!(!ok && err.contains("dnsight serve --api"), "{err}");
    let (ok, _, err) = run(&["devices", "list", "--server", &server], None);
    assert!(!ok && err.contains("DNSIGHT_SERVER"), "{err}");
    // an action needs ids or a filter, and not both
    let (ok, _, err) = run(&["alerts", "flag", "--server", &server], None);
    assert!(!ok && err.contains("--filter-"), "{err}");
    let (ok, _, err) = run(
        &[
            "alerts",
            "flag",
            "abc",
            "--filter-kind",
            "dga",
            "--server",
            &server,
        ],
        None,
    );
    assert!(!ok && err.contains("not both"), "{err}");
    let (ok, _, err) = run(&["alerts", "note", "abc", "--server", &server], None);
    assert!(!ok && err.contains("--note"), "{err}");
    let (ok, _, err) = run(
        &[
            "blocks",
            "add",
            "x.example",
            "--scope",
            "group",
            "--server",
            &server,
        ],
        None,
    );
    assert!(!ok && err.contains("--group"), "{err}");
    let (ok, _, err) = run(
        &[
            "alerts", "resolve", "abc", "--reason", "because", "--server", &server,
        ],
        None,
    );
    assert!(!ok && err.contains("false_positive"), "{err}");
}

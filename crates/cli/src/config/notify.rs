//! `[[notify]]`: where alerts are told (webhooks, chat, syslog, e-mail, JSON lines). The keys
//! and their validation live in `dnsight_notify::config`; this reads them from the file.

use anyhow::{anyhow, Context};
use dnsight_notify::{Target, TargetRaw};
use std::path::Path;

pub const SECTIONS: &[&str] = &["notify"];

/// The validated targets of a config file (none without a file or a `[[notify]]`).
pub fn load(file: Option<&Path>) -> anyhow::Result<Vec<Target>> {
    let Some(p) = file else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("cannot read config file {}", p.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}: not valid TOML", p.display()))?;
    let raws: Vec<TargetRaw> = match table.get("notify").cloned() {
        Some(v @ toml::Value::Array(_)) => v
            .try_into()
            .map_err(|e| anyhow!("{}: [[notify]]: {e}", p.display()))?,
        Some(_) => {
            return Err(anyhow!(
                "{}: write notification targets as [[notify]] tables (one per target)",
                p.display()
            ))
        }
        None => Vec::new(),
    };
    let base = p.parent().map(Path::to_path_buf).unwrap_or_default();
    dnsight_notify::config::validate(&raws, &base, &|k| std::env::var(k).ok())
        .map_err(|e| anyhow!("{}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml: &str) -> anyhow::Result<Vec<Target>> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.toml");
        std::fs::write(&p, toml).unwrap();
        load(Some(&p))
    }

    #[test]
    fn the_example_file_is_valid() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/notify.toml");
        let t = load(Some(&p)).unwrap();
        assert_eq!(t.len(), 5);
    }

    #[test]
    fn targets_and_their_errors() {
        let t = check(
            r#"
[[notify]]
name = "soc"
type = "webhook"
url = "https://hooks.example/x?token=secret"
secret = "s3"
min_severity = "high"
kinds = ["dga"]
events = ["new", "acknowledged"]

[[notify]]
name = "siem"
type = "syslog"
address = "127.0.0.1:6514"
transport = "tls"

[[notify]]
name = "mail"
type = "email"
smtp = "smtp.example:587"
from = "dnsight@example.com"
to = ["soc@example.com"]
"#,
        )
        .unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(
            t[0].describe(),
            "https://hooks.example/…",
            "no secret shown"
        );
        assert_eq!(t[1].type_name(), "syslog");
        for (bad, says) in [
            ("[[notify]]\nname = \"a\"\ntype = \"webhok\"\n", "type \"webhok\""),
            ("[[notify]]\nname = \"a\"\ntype = \"webhook\"\n", "needs `url`"),
            ("[[notify]]\nname = \"a\"\ntype = \"webhook\"\nurl = \"ftp://x/y\"\n", "not an http"),
            ("[[notify]]\nname = \"a\"\ntype = \"file\"\npath = \"-\"\nkinds = [\"dgaa\"]\n", "not an alert kind"),
            ("[[notify]]\nname = \"a\"\ntype = \"file\"\npath = \"-\"\nevents = [\"born\"]\n", "events: \"born\""),
            ("[[notify]]\nname = \"a\"\ntype = \"file\"\npath = \"-\"\nurl2 = 1\n", "unknown field `url2`"),
            ("[[notify]]\nname = \"a\"\ntype = \"email\"\nsmtp = \"h:25\"\nfrom = \"x@y\"\nto = [\"a@b\\r\\nBcc: c@d\"]\n", "not an e-mail address"),
            ("[[notify]]\nname = \"a\"\ntype = \"webhook\"\nurl = \"http://h/x\"\nsecret_env = \"DNSIGHT_TEST_UNSET_VAR\"\n", "not set in the environment"),
            ("[[notify]]\nname = \"a\"\ntype = \"file\"\npath = \"-\"\n[[notify]]\nname = \"a\"\ntype = \"file\"\npath = \"-\"\n", "names must be unique"),
            ("[notify]\nname = \"a\"\n", "[[notify]] tables"),
            ("[[notify]]\nname = \"a\"\ntype = \"syslog\"\naddress = \"h:514\"\nfacility = \"local9\"\n", "facility"),
        ] {
            let e = format!("{:#}", check(bad).unwrap_err());
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }
}

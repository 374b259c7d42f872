//! `[api]`: the HTTP API (and the RPZ zone it serves).
//!
//! ```toml
//! [api]
//! listen = "127.0.0.1:8053"        # default; `--api ADDR` on the command line
//! tls_cert = "cert.pem"            # optional: HTTPS with this certificate chain and key
//! tls_key = "key.pem"
//! rpz_clients = ["10.0.0.53/32"]   # may fetch /rpz without a token (loopback always may)
//! rpz_zone = "rpz.dnsight."        # origin of the RPZ zone
//! rpz_file = "blocks.rpz"          # also write the zone here on every change (BIND, Knot, PowerDNS)
//! metrics_public = false
//! ```

use anyhow::{anyhow, bail, Context};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const SECTIONS: &[&str] = &["api"];

/// The default API address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8053";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiRaw {
    listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    rpz_clients: Vec<String>,
    rpz_zone: Option<String>,
    rpz_file: Option<PathBuf>,
    #[serde(default)]
    metrics_public: bool,
    enabled: Option<bool>,
}

/// Validated `[api]`.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// None: the API is off.
    pub listen: Option<SocketAddr>,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub rpz_clients: Vec<dnsight_engine::Cidr>,
    pub rpz_zone: String,
    pub rpz_file: Option<PathBuf>,
    pub metrics_public: bool,
}

fn rel(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Parses an address for `--api`/`listen`: `ADDR:PORT`, or `:PORT` for loopback.
pub fn parse_listen(s: &str) -> anyhow::Result<SocketAddr> {
    let s = s.trim();
    let s2 = if let Some(port) = s.strip_prefix(':') {
        format!("127.0.0.1:{port}")
    } else {
        s.to_string()
    };
    s2.parse()
        .map_err(|_| anyhow!("{s:?} is not ADDR:PORT (e.g. 127.0.0.1:8053)"))
}

/// Reads `[api]` from the config file (if any); `cli_listen` (`--api`) wins over the file.
/// `default_on`: the API runs on its default address when neither names one.
pub fn load(
    file: Option<&Path>,
    cli_listen: Option<&str>,
    default_on: bool,
) -> anyhow::Result<ApiSettings> {
    let (raw, f, base) = match file {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read config file {}", p.display()))?;
            let table: toml::Table = toml::from_str(&text)
                .with_context(|| format!("{}: not valid TOML", p.display()))?;
            let raw: ApiRaw = match table.get("api").cloned() {
                Some(v) => v
                    .try_into()
                    .map_err(|e| anyhow!("{}: [api]: {e}", p.display()))?,
                None => ApiRaw::default(),
            };
            (
                raw,
                p.display().to_string(),
                p.parent().map(Path::to_path_buf).unwrap_or_default(),
            )
        }
        None => (ApiRaw::default(), "<flags>".to_string(), PathBuf::from(".")),
    };
    let listen = match (cli_listen, &raw.listen) {
        (Some(c), _) if c.eq_ignore_ascii_case("off") => None,
        (Some(c), _) => Some(parse_listen(c).with_context(|| "--api".to_string())?),
        (None, Some(l)) if l.eq_ignore_ascii_case("off") => None,
        (None, Some(l)) => Some(parse_listen(l).with_context(|| format!("{f}: [api] listen"))?),
        (None, None) if raw.enabled.unwrap_or(default_on) => {
            Some(DEFAULT_LISTEN.parse().expect("static address"))
        }
        (None, None) => None,
    };
    let listen = if raw.enabled == Some(false) && cli_listen.is_none() {
        None
    } else {
        listen
    };
    let tls = match (&raw.tls_cert, &raw.tls_key) {
        (Some(c), Some(k)) => Some((rel(&base, c), rel(&base, k))),
        (None, None) => None,
        _ => bail!("{f}: [api] needs both tls_cert and tls_key for HTTPS (or neither)"),
    };
    let mut rpz_clients = Vec::new();
    for (i, c) in raw.rpz_clients.iter().enumerate() {
        rpz_clients.push(c.parse::<dnsight_engine::Cidr>().map_err(|_| {
            anyhow!("{f}: [api] rpz_clients[{i}] = {c:?}: use an address or CIDR, e.g. 10.0.0.53 or 10.0.0.0/24")
        })?);
    }
    let mut zone = raw.rpz_zone.unwrap_or_else(|| "rpz.dnsight.".to_string());
    if !zone.ends_with('.') {
        zone.push('.');
    }
    if zone.len() > 200
        || zone
            .bytes()
            .any(|b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'))
    {
        bail!("{f}: [api] rpz_zone = {zone:?}: use a domain name such as rpz.dnsight.");
    }
    Ok(ApiSettings {
        listen,
        tls,
        rpz_clients,
        rpz_zone: zone,
        rpz_file: raw.rpz_file.map(|p| rel(&base, &p)),
        metrics_public: raw.metrics_public,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::test_file as write;

    #[test]
    fn serve_example_api_section() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/serve.toml");
        let s = load(Some(&p), None, false).unwrap();
        assert_eq!(s.listen, Some(DEFAULT_LISTEN.parse().unwrap()));
        assert_eq!(s.rpz_clients.len(), 1);
        assert_eq!(s.rpz_zone, "rpz.dnsight.");
        assert!(s.tls.is_none() && s.rpz_file.is_none() && !s.metrics_public);
    }

    #[test]
    fn defaults_flags_and_errors() {
        let s = load(None, None, true).unwrap();
        assert_eq!(s.listen, Some(DEFAULT_LISTEN.parse().unwrap()));
        assert!(load(None, None, false).unwrap().listen.is_none());
        assert_eq!(
            load(None, Some(":9999"), false).unwrap().listen,
            Some("127.0.0.1:9999".parse().unwrap())
        );
        assert!(load(None, Some("off"), true).unwrap().listen.is_none());
        let (_d, p) = write("[api]\nlisten = \"0.0.0.0:8443\"\nrpz_clients = [\"10.0.0.53\", \"10.1.0.0/16\"]\nrpz_file = \"z.rpz\"\n");
        let s = load(Some(&p), None, false).unwrap();
        assert_eq!(s.listen, Some("0.0.0.0:8443".parse().unwrap()));
        assert_eq!(s.rpz_clients.len(), 2);
        assert_eq!(s.rpz_file.unwrap(), p.parent().unwrap().join("z.rpz"));
        let (_d, p) = write("[api]\nlistn = \"x\"\n");
        assert!(format!("{:#}", load(Some(&p), None, false).unwrap_err()).contains("listn"));
        let (_d, p) = write("[api]\ntls_cert = \"c.pem\"\n");
        assert!(format!("{:#}", load(Some(&p), None, false).unwrap_err()).contains("tls_key"));
        let (_d, p) = write("[api]\nrpz_clients = [\"nope\"]\n");
        assert!(
            format!("{:#}", load(Some(&p), None, false).unwrap_err()).contains("rpz_clients[0]")
        );
    }
}

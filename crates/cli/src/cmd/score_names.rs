//! `dnsight score-names [FILE|-]`: reads one name a line and prints `name<TAB>probability`
//! (0..1 that the name is algorithmically generated), for analysts and for evaluation.
//! `--json` prints one JSON object a line with the features and the tunnel score instead.
//!
//! Lines are arbitrary bytes: a line that parses as a presentation-format name (with `\DDD`
//! escapes) is taken as such, anything else is taken as raw label bytes. Output names are in
//! dnsight's escaped form (printable ASCII, no tabs or newlines), so the output is always
//! well-formed whatever the input. Empty lines are skipped; the count of skipped lines goes to
//! stderr.

use super::train_dga::name_from_bytes;
use anyhow::{Context, Result};
use dnsight_engine::dga;
use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// File with one name a line; `-` or nothing reads standard input.
    file: Option<PathBuf>,
    /// One JSON object a line: name, registered domain, score, tunnel score and features.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let input: Box<dyn BufRead> = match &args.file {
        Some(p) if p.as_os_str() != "-" => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
        )),
        _ => Box::new(std::io::stdin().lock()),
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let (scored, skipped) = score_stream(input, &mut out, args.json)?;
    out.flush()?;
    if skipped > 0 {
        eprintln!("dnsight score-names: scored {scored} names, skipped {skipped} empty lines");
    }
    Ok(())
}

/// Scores every line of `input` into `out`; returns (scored, skipped).
fn score_stream(mut input: impl BufRead, out: &mut impl Write, json: bool) -> Result<(u64, u64)> {
    let mut line = Vec::with_capacity(256);
    let (mut scored, mut skipped) = (0u64, 0u64);
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .context("reading input")?;
        if n == 0 {
            break;
        }
        let mut l: &[u8] = &line;
        l = l.strip_suffix(b"\n").unwrap_or(l);
        l = l.strip_suffix(b"\r").unwrap_or(l);
        let l = l.trim_ascii();
        let Some(name) = name_from_bytes(l) else {
            skipped += 1;
            continue;
        };
        scored += 1;
        let p = dga::score(&name);
        let r = if json {
            let sp = dga::split(&name);
            let registered = sp
                .filter(|s| !s.label.is_empty())
                .map(|s| format!("{}.{}", s.label, s.suffix));
            let f = dga::features(&name);
            let v = serde_json::json!({
                "name": name.as_str(),
                "registered_domain": registered,
                "score": round4(p),
                // the generator whose per-family model fits the name best (a hint, not a verdict)
                "closest_family": dga::model().family_name(f.family),
                "tunnel_score": round4(dga::tunnel_score(&name)),
                "features": f,
                "tunnel_features": dga::tunnel_features(&name),
            });
            writeln!(out, "{v}")
        } else {
            writeln!(out, "{}\t{:.4}", name.as_str(), p)
        };
        if let Err(e) = r {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                break;
            }
            return Err(e).context("writing output");
        }
    }
    Ok((scored, skipped))
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

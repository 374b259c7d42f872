use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Input files (`-` for stdin); format sniffed from content, `.gz` unwrapped.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Write every event as a JSON line to this file (`-` for stdout).
    #[arg(long)]
    pub events_out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("not implemented yet")
}

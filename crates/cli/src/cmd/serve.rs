#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}

#[derive(clap::Args)]
pub struct CheckConfigArgs {
    pub file: std::path::PathBuf,
}

pub fn check_config(_args: CheckConfigArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}

//! `switchyard platform`.

#[derive(clap::Args, Debug)]
pub struct PlatformArgs {}

pub fn run(_args: PlatformArgs) -> anyhow::Result<()> {
    anyhow::bail!("`switchyard platform` is not built yet")
}

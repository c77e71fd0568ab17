//! `switchyard gateway`.

#[derive(clap::Args, Debug)]
pub struct GatewayArgs {}

pub fn run(_args: GatewayArgs) -> anyhow::Result<()> {
    anyhow::bail!("`switchyard gateway` is not built yet")
}

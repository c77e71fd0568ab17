//! `switchyard up`.

#[derive(clap::Args, Debug)]
pub struct UpArgs {}

pub fn run(_args: UpArgs) -> anyhow::Result<()> {
    anyhow::bail!("`switchyard up` is not built yet")
}

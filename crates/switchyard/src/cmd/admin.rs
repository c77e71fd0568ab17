//! Admin commands: a typed REST client for accounts, gateways, environments, APIs and tokens.

#[derive(clap::Subcommand, Debug)]
pub enum AdminCommand {}

pub fn run(command: AdminCommand) -> anyhow::Result<()> {
    match command {}
}

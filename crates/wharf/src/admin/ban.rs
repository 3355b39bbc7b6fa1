//! `wharf ban list|remove`: the cluster-wide bans of client addresses.

use anyhow::Result;

use crate::admin::{connect, expect_done};
use crate::cli::BanCommand;

pub async fn run(command: BanCommand) -> Result<()> {
    match command {
        BanCommand::List { target } => {
            for b in connect(&target).await?.bans().await? {
                println!("{}\tuntil={}\treason={}", b.address, b.until, b.reason);
            }
        }
        BanCommand::Remove { address, target } => {
            let admin = connect(&target).await?;
            expect_done(
                admin
                    .write(wharf_store::Command::RemoveBan {
                        address: address.clone(),
                    })
                    .await?,
                &format!("ban of {address}"),
            )?;
            println!("lifted the ban of {address} on every node");
        }
    }
    Ok(())
}

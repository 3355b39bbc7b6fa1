//! `wharf storage scan`: objects written to the bucket by something other
//! than Wharf become files of the namespace (`wharf_node::objects::scan`).
//! The bucket is listed from here, with this host's credentials; the
//! namespace changes go through the node the target options name.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use wharf_node::objects::scan::Homes;
use wharf_node::objects::{credentials, Objects, Placement};

use crate::admin::connect;
use crate::cli::{StorageCommand, Target};

/// Skipped objects printed one per line; the rest are counted.
const SKIPPED_SHOWN: usize = 50;

pub async fn run(command: StorageCommand) -> Result<()> {
    match command {
        StorageCommand::Scan {
            prefix,
            s3_credentials_file,
            s3_ca_file,
            target,
        } => scan(&prefix, s3_credentials_file, s3_ca_file, &target).await,
    }
}

async fn scan(
    under: &str,
    credentials_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    target: &Target,
) -> Result<()> {
    if !under.starts_with('/') {
        bail!("--prefix {under:?}: a path from the root, such as /home/alice");
    }
    let admin = connect(target).await?;
    let settings = admin.storage_settings().await?;
    let setting = |key: &str| settings.get(key).cloned();
    let storage = setting("fs.storage").unwrap_or_else(|| "local".into());
    if storage != "s3" {
        bail!("this cluster keeps files' contents on {storage} storage; `wharf storage scan` imports the objects of an s3 bucket");
    }
    let placement = Placement {
        endpoint: setting("fs.s3.endpoint").context("the cluster has no fs.s3.endpoint")?,
        bucket: setting("fs.s3.bucket").context("the cluster has no fs.s3.bucket")?,
        prefix: setting("fs.s3.prefix").unwrap_or_default(),
        region: setting("fs.s3.region").unwrap_or_else(|| "us-east-1".into()),
        path_style: setting("fs.s3.path_style").is_some_and(|v| v == "true"),
    };
    let credentials =
        credentials::load(credentials_file.as_deref(), |name| std::env::var(name).ok())?;
    let (endpoint, bucket) = (placement.endpoint.clone(), placement.bucket.clone());
    let objects = Objects::connect(placement, &credentials, ca_file, None)?;
    let homes = Homes::new(admin.users().await?.into_iter().map(|u| (u.name, u.home)));
    let tally = objects
        .scan(under, &homes, |command| {
            let admin = &admin;
            async move { admin.write(command).await.map_err(|e| e.to_string()) }
        })
        .await?;
    println!(
        "scanned {} objects of bucket {bucket} at {endpoint} under {under}: {} imported, {} already known, {} directories made from folder markers, {} skipped",
        tally.listed,
        tally.imported,
        tally.known,
        tally.directories,
        tally.skipped.len()
    );
    for (path, why) in tally.skipped.iter().take(SKIPPED_SHOWN) {
        println!("skipped\t{path}\t{why}");
    }
    if tally.skipped.len() > SKIPPED_SHOWN {
        println!("… and {} more skipped", tally.skipped.len() - SKIPPED_SHOWN);
    }
    Ok(())
}

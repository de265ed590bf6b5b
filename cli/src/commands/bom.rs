//! `kindred bom`: a node image's bill of materials as a table, kindred's JSON, SPDX or
//! CycloneDX; `kindred bom diff`: what changed between two node images or BOM files.

use clap::{Args, Subcommand, ValueEnum};
use kindred_node_image::bom::{self, cyclonedx, diff, spdx};

use super::CmdResult;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
    /// SPDX 2.3 JSON.
    Spdx,
    /// CycloneDX 1.5 JSON.
    Cyclonedx,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DiffFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BomArgs {
    #[command(subcommand)]
    command: Option<BomCommand>,
    /// Node image, or the path of a BOM file [default: the default node image of this host].
    image: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

#[derive(Debug, Subcommand)]
enum BomCommand {
    /// Compare two BOMs: components added, removed, and changed (version or sha256).
    Diff(DiffArgs),
}

#[derive(Debug, Args)]
struct DiffArgs {
    /// The old side: a BOM file if a file is at that path, else a node image.
    from: String,
    /// The new side: a BOM file if a file is at that path, else a node image.
    to: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    output: DiffFormat,
}

pub async fn run(args: BomArgs) -> CmdResult {
    if let Some(BomCommand::Diff(d)) = args.command {
        return run_diff(d).await;
    }
    let image = match args.image {
        Some(image) => image,
        None => {
            let docker = kindred::provider::Docker::connect().await?;
            kindred::cluster::host_default(&docker).await?.node_image()
        }
    };
    let (bom, source) = kindred_node_image::load_bom(&image).await?;
    let subject = source.image_name(&bom);
    match args.output {
        Format::Table => print!("{}", bom.table()),
        Format::Json => print!("{}", String::from_utf8_lossy(&bom.to_json().0)),
        Format::Spdx => {
            let created = bom::document_time()?.unwrap_or_else(|| bom::FIXED_CREATED.into());
            print_json(&spdx::document(&bom, &subject, &created))?;
        }
        Format::Cyclonedx => {
            print_json(&cyclonedx::document(&bom, &subject, bom::document_time()?))?;
        }
    }
    Ok(())
}

async fn run_diff(args: DiffArgs) -> CmdResult {
    let (from, _) = kindred_node_image::load_bom(&args.from).await?;
    let (to, _) = kindred_node_image::load_bom(&args.to).await?;
    let d = diff::diff(&from, &args.from, &to, &args.to);
    match args.output {
        DiffFormat::Table => print!("{}", d.table()),
        DiffFormat::Json => print_json(&d)?,
    }
    Ok(())
}

fn print_json(value: &impl serde::Serialize) -> CmdResult {
    let mut json = serde_json::to_string_pretty(value)?;
    json.push('\n');
    print!("{json}");
    Ok(())
}

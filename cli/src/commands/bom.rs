//! `kindred bom`: a node image's bill of materials as a table, kindred's JSON, SPDX or
//! CycloneDX; `kindred bom diff`: what changed between two node images or BOM files.

use clap::{Args, Subcommand, ValueEnum};
use kindred_node_image::bom::{self, diff};

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
        Format::Table => out!("{}", bom.table()),
        Format::Json => out!("{}", String::from_utf8_lossy(&bom.to_json().0)),
        Format::Spdx => out!(
            "{}",
            String::from_utf8_lossy(&bom::spdx_json(&bom, &subject)?)
        ),
        Format::Cyclonedx => out!(
            "{}",
            String::from_utf8_lossy(&bom::cyclonedx_json(&bom, &subject)?)
        ),
    }
    Ok(())
}

async fn run_diff(args: DiffArgs) -> CmdResult {
    let (from, _) = kindred_node_image::load_bom(&args.from).await?;
    let (to, _) = kindred_node_image::load_bom(&args.to).await?;
    let d = diff::diff(&from, &args.from, &to, &args.to);
    match args.output {
        DiffFormat::Table => out!("{}", d.table()),
        DiffFormat::Json => out!("{}", String::from_utf8_lossy(&bom::pretty_json(&d))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        bom: BomArgs,
    }

    #[test]
    fn diff_is_a_subcommand_and_formats_parse() {
        let t = T::parse_from(["t", "diff", "a.json", "kindred/node:v1.34.12", "-o", "json"]);
        match t.bom.command {
            Some(BomCommand::Diff(d)) => {
                assert_eq!(
                    (d.from.as_str(), d.to.as_str()),
                    ("a.json", "kindred/node:v1.34.12")
                );
                assert!(matches!(d.output, DiffFormat::Json));
            }
            None => panic!("diff not parsed as a subcommand"),
        }
        let t = T::parse_from(["t", "kindred/node:v1.34.12", "-o", "cyclonedx"]);
        assert!(t.bom.command.is_none());
        assert_eq!(t.bom.image.as_deref(), Some("kindred/node:v1.34.12"));
        assert!(matches!(t.bom.output, Format::Cyclonedx));
        assert!(T::try_parse_from(["t", "-o", "spdx"]).is_ok());
        assert!(T::try_parse_from(["t", "diff", "a", "b", "-o", "spdx"]).is_err());
    }
}

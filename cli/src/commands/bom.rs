use clap::{Args, ValueEnum};
use kindred::provider::Docker;

use super::CmdResult;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct BomArgs {
    /// Node image [default: the default node image of this host].
    image: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

pub async fn run(args: BomArgs) -> CmdResult {
    let docker = Docker::connect().await?;
    let image = match args.image {
        Some(image) => image,
        None => kindred::cluster::host_default(&docker).await?.node_image(),
    };
    let bom = kindred_node_image::read_bom(&docker, &image).await?;
    match args.output {
        Format::Table => print!("{}", bom.table()),
        Format::Json => print!("{}", String::from_utf8_lossy(&bom.to_json().0)),
    }
    Ok(())
}

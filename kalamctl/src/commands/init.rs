use std::path::Path;

use kalamdb_core::{CURRENT_FORMAT_VERSION, Engine};
use serde_json::json;

use crate::cli::{Cli, Format};
use crate::exit::{CliError, ExitCode};

pub fn run(cli: &Cli, dir: &Path) -> Result<ExitCode, CliError> {
    let engine = Engine::init(dir, &super::who("init"))?;
    drop(engine);
    match cli.format {
        Format::Json => println!(
            "{}",
            json!({"data_dir": dir.display().to_string(), "format_version": CURRENT_FORMAT_VERSION})
        ),
        Format::Table if !cli.quiet => {
            println!(
                "initialized {} (format {CURRENT_FORMAT_VERSION})",
                dir.display()
            )
        }
        Format::Table => {}
    }
    Ok(ExitCode::Ok)
}

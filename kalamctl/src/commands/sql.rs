use std::io::Read;
use std::path::Path;

use kalamdb_core::Session;

use crate::cli::{Cli, Format};
use crate::exit::{CliError, ExitCode};
use crate::output::{render_json, render_table};

pub fn run(cli: &Cli, dir: &Path, user: Option<&str>, sql: &str) -> Result<ExitCode, CliError> {
    let text = if sql == "-" {
        let mut buf = String::new();
        std::io::stdin()
            .read_to_string(&mut buf)
            .map_err(|source| CliError::Input {
                what: "SQL from standard input".into(),
                source,
            })?;
        buf
    } else {
        sql.to_string()
    };
    // Malformed SQL is refused before the database is even opened: nothing on disk changes.
    kalamdb_core::sql::check_syntax(&text)?;
    let session = match user {
        Some(id) => Session::user(id),
        None => Session::admin(),
    };
    let engine = super::open_offline(dir, "sql")?;
    let results = super::block_on(engine.execute(&session, &text))?;
    match cli.format {
        Format::Json => println!("{}", render_json(&results)),
        Format::Table => {
            for r in &results {
                if r.columns.is_empty() && cli.quiet {
                    continue;
                }
                println!("{}", render_table(r));
            }
        }
    }
    Ok(ExitCode::Ok)
}

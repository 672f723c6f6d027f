//! `kalamctl live list|kill --server URL --token T`: a running kalamd's subscriptions.

use serde_json::{Value, json};

use crate::cli::{Cli, Format, LiveCommand};
use crate::exit::{CliError, ExitCode};
use crate::output::{human_time, print_json, render_rows};
use crate::remote::Client;

pub fn run(cli: &Cli, command: &LiveCommand) -> Result<ExitCode, CliError> {
    match command {
        LiveCommand::List { server } => {
            let client = Client::new(&server.server, &server.token);
            let rows = client
                .results("SHOW LIVE QUERIES")?
                .into_iter()
                .next()
                .map(|r| r.rows)
                .unwrap_or_default();
            if cli.format == Format::Json {
                print_json(&json!({ "live_queries": rows }));
            } else if rows.is_empty() {
                if !cli.quiet {
                    println!("no live queries");
                }
            } else {
                let text =
                    |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
                println!(
                    "{}",
                    render_rows(
                        &["LIVE ID", "USER", "TABLE", "SINCE", "CHANGES", "QUERY"],
                        rows.iter().map(|r| vec![
                            text(r.get("live_id")),
                            text(r.get("user_id")),
                            text(r.get("table_name")),
                            human_time(r.get("created_at").and_then(Value::as_i64).unwrap_or(0)),
                            r.get("changes")
                                .and_then(Value::as_u64)
                                .unwrap_or(0)
                                .to_string(),
                            text(r.get("query")),
                        ])
                    )
                );
            }
        }
        LiveCommand::Kill { id, server } => {
            let client = Client::new(&server.server, &server.token);
            client.results(&format!("KILL LIVE QUERY '{}'", id.replace('\'', "''")))?;
            match cli.format {
                Format::Json => print_json(&json!({"live_id": id, "outcome": "killed"})),
                Format::Table if !cli.quiet => println!("live query {id} killed"),
                Format::Table => {}
            }
        }
    }
    Ok(ExitCode::Ok)
}

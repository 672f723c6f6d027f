//! Running SQL: split a body into statements, parse them all, then run them in order.
//!
//! Every statement is parsed before any runs, so malformed SQL anywhere in a body changes
//! nothing. Statements then run in order; the first failure stops the body, and the statements
//! before it stay applied.

mod backup;
mod ddl;
mod dml;
mod live_queries;
mod parse;
mod point;
mod query;
mod split;
mod storages;
mod values;

pub use backup::{BackupHandler, StartedBackup, register_backup_handler};

use crate::catalog::names::validate_user_id;
use crate::{CoreError, Engine, QueryResult, Result, Session};
use parse::Command;

/// Checks that `text` holds at least one statement and that every statement parses, without
/// touching any database: callers use it to refuse malformed SQL before opening one.
pub fn check_syntax(text: &str) -> Result<()> {
    parse_all(text).map(|_| ())
}

fn parse_all(text: &str) -> Result<Vec<Command>> {
    let statements = split::split_statements(text)?;
    if statements.is_empty() {
        return Err(CoreError::InvalidInput("no SQL statement given".into()));
    }
    statements.iter().map(|s| parse::parse(s)).collect()
}

impl Engine {
    /// Runs every statement of `text` as `session`.
    pub async fn execute(&self, session: &Session, text: &str) -> Result<Vec<QueryResult>> {
        validate_user_id(&session.user_id)?;
        let commands = parse_all(text)?;
        if self.storage().is_read_only() && commands.iter().any(|c| c.writes()) {
            return Err(CoreError::InvalidInput(
                "the database is open read-only; this statement writes".into(),
            ));
        }
        let mut results = Vec::with_capacity(commands.len());
        for command in commands {
            results.push(self.run(session, command).await?);
        }
        Ok(results)
    }

    async fn run(&self, session: &Session, command: Command) -> Result<QueryResult> {
        if command.needs_admin() && !session.is_admin() {
            return Err(CoreError::PermissionDenied(format!(
                "{} needs the admin role",
                command.name()
            )));
        }
        match command {
            Command::CreateNamespace {
                name,
                if_not_exists,
            } => self.create_namespace(&name, if_not_exists).await,
            Command::AlterNamespace { name, options } => self.alter_namespace(&name, options).await,
            Command::DropNamespace { name, if_exists } => {
                self.drop_namespace(&name, if_exists).await
            }
            Command::ShowNamespaces => self.show_namespaces(),
            Command::CreateStorage {
                location,
                if_not_exists,
            } => self.create_storage(&location, if_not_exists).await,
            Command::AlterStorage { name, change } => self.alter_storage(&name, change).await,
            Command::DropStorage { name, if_exists } => self.drop_storage(&name, if_exists).await,
            Command::ShowStorages => self.show_storages(),
            Command::ShowLiveQueries => self.show_live_queries(),
            Command::KillLiveQuery { live_id } => self.kill_live_query(&live_id).await,
            Command::CreateTable {
                table,
                if_not_exists,
            } => self.create_table(table, if_not_exists).await,
            Command::DropTable {
                kind,
                namespace,
                table,
                if_exists,
                force,
            } => match self
                .drop_table(
                    &namespace,
                    &table,
                    &crate::DropOptions {
                        kind,
                        if_exists,
                        force,
                        observer: None,
                        interrupt: None,
                    },
                )
                .await?
            {
                Some(r) => Ok(QueryResult::done(
                    1,
                    format!(
                        "table {namespace}.{table} dropped (job {}: {} file(s), {} byte(s) freed){}",
                        r.job_id,
                        r.files_deleted,
                        r.bytes_freed,
                        r.left_behind
                            .map(|l| format!("; left behind: {l}"))
                            .unwrap_or_default()
                    ),
                )),
                None => Ok(QueryResult::done(
                    0,
                    format!("table {namespace}.{table} does not exist"),
                )),
            },
            Command::ShowTables { namespace } => self.show_tables(namespace.as_deref()),
            Command::DescribeTable { namespace, table } => self.describe_table(&namespace, &table),
            Command::FlushTable { namespace, table } => {
                let r = self.flush_table(&namespace, &table).await?;
                Ok(QueryResult::done(
                    r.rows as usize,
                    format!(
                        "flushed {} row(s) into {} file(s) (job {})",
                        r.rows, r.files, r.job_id
                    ),
                ))
            }
            Command::Backup {
                repository,
                credentials,
                detached,
            } => {
                self.backup_statement(repository, credentials, detached)
                    .await
            }
            Command::Insert(stmt) => self.insert(session, &stmt).await,
            Command::InsertLiteral(rows) => self.insert_literal(session, rows).await,
            Command::Update(stmt) => self.update(session, &stmt).await,
            Command::Delete(stmt) => self.delete(session, &stmt).await,
            Command::Query(stmt) => self.run_query(session, *stmt).await,
            Command::Explain(stmt) => self.run_explain(session, *stmt).await,
        }
    }
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Command::CreateNamespace { .. } => "CREATE NAMESPACE",
            Command::AlterNamespace { .. } => "ALTER NAMESPACE",
            Command::DropNamespace { .. } => "DROP NAMESPACE",
            Command::ShowNamespaces => "SHOW NAMESPACES",
            Command::CreateStorage { .. } => "CREATE STORAGE",
            Command::AlterStorage { .. } => "ALTER STORAGE",
            Command::DropStorage { .. } => "DROP STORAGE",
            Command::ShowStorages => "SHOW STORAGES",
            Command::ShowLiveQueries => "SHOW LIVE QUERIES",
            Command::KillLiveQuery { .. } => "KILL LIVE QUERY",
            Command::CreateTable { .. } => "CREATE TABLE",
            Command::DropTable { .. } => "DROP TABLE",
            Command::ShowTables { .. } => "SHOW TABLES",
            Command::DescribeTable { .. } => "DESCRIBE TABLE",
            Command::FlushTable { .. } => "FLUSH TABLE",
            Command::Backup { .. } => "BACKUP DATABASE",
            Command::Insert(_) | Command::InsertLiteral(_) => "INSERT",
            Command::Update(_) => "UPDATE",
            Command::Delete(_) => "DELETE",
            Command::Query(_) => "SELECT",
            Command::Explain(_) => "EXPLAIN",
        }
    }

    /// DDL and FLUSH are for admins; users may read the catalog and run DML and queries.
    fn needs_admin(&self) -> bool {
        matches!(
            self,
            Command::CreateNamespace { .. }
                | Command::AlterNamespace { .. }
                | Command::DropNamespace { .. }
                | Command::CreateStorage { .. }
                | Command::AlterStorage { .. }
                | Command::DropStorage { .. }
                | Command::ShowStorages
                | Command::ShowLiveQueries
                | Command::KillLiveQuery { .. }
                | Command::CreateTable { .. }
                | Command::DropTable { .. }
                | Command::FlushTable { .. }
                | Command::Backup { .. }
        )
    }

    fn writes(&self) -> bool {
        !matches!(
            self,
            Command::ShowNamespaces
                | Command::ShowStorages
                | Command::ShowLiveQueries
                | Command::ShowTables { .. }
                | Command::DescribeTable { .. }
                | Command::Query(_)
                | Command::Explain(_)
        )
    }
}

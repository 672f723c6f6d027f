//! Classifying and parsing one statement.
//!
//! KalamDB's own statements (namespaces, typed tables, SHOW, DESCRIBE, FLUSH) are parsed here
//! with sqlparser's token-level API; INSERT, UPDATE and DELETE with sqlparser's statement
//! parser; everything else is a query for DataFusion.
#![deny(
    clippy::arithmetic_side_effects,
    clippy::cast_possible_wrap,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use datafusion::error::DataFusionError;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    ColumnOption, DataType as SqlDataType, Expr, ObjectName, SqlOption, Statement, TableConstraint,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;
use kalamdb_sql::{FlushPolicy, LocationType};
use kalamdb_store::TableKind;

use crate::catalog::names::{validate_column, validate_name};
use crate::catalog::types::{ColumnDef, ColumnType};
use crate::catalog::{LocationChange, NewLocation, NewTable, is_system_column};
use crate::limits;
use crate::{CoreError, Result};

/// One parsed statement.
#[derive(Debug)]
pub enum Command {
    CreateNamespace {
        name: String,
        if_not_exists: bool,
    },
    AlterNamespace {
        name: String,
        options: Vec<(String, String)>,
    },
    DropNamespace {
        name: String,
        if_exists: bool,
    },
    ShowNamespaces,
    CreateTable {
        table: NewTable,
        if_not_exists: bool,
    },
    /// `DROP [kind] TABLE [IF EXISTS] ns.t [FORCE]`.
    DropTable {
        kind: Option<TableKind>,
        namespace: String,
        table: String,
        if_exists: bool,
        force: bool,
    },
    ShowLiveQueries,
    /// `KILL LIVE QUERY 'live_id'`.
    KillLiveQuery {
        live_id: String,
    },
    ShowTables {
        namespace: Option<String>,
    },
    DescribeTable {
        namespace: String,
        table: String,
    },
    FlushTable {
        namespace: String,
        table: String,
    },
    /// `CREATE STORAGE [IF NOT EXISTS] name TYPE filesystem|s3 PATH '...' [CREDENTIALS 'p']`.
    CreateStorage {
        location: NewLocation,
        if_not_exists: bool,
    },
    /// `ALTER STORAGE name SET PATH '...'` or `SET CREDENTIALS 'p'|NULL`.
    AlterStorage {
        name: String,
        change: LocationChange,
    },
    DropStorage {
        name: String,
        if_exists: bool,
    },
    ShowStorages,
    /// `BACKUP DATABASE TO '/repo'|'s3://bucket/prefix' [CREDENTIALS 'p'] [DETACHED]`.
    Backup {
        repository: String,
        credentials: Option<String>,
        detached: bool,
    },
    Insert(Box<Statement>),
    /// An INSERT of literal rows, read without sqlparser (see `values`).
    InsertLiteral(super::values::LiteralInsert),
    Update(Box<Statement>),
    Delete(Box<Statement>),
    /// A query (SELECT, WITH, VALUES, a parenthesized query), parsed once: the point-lookup
    /// path reads it, and DataFusion plans it without parsing its text again.
    Query(Box<Statement>),
    /// EXPLAIN, as DataFusion's own parser reads it (its variants are DataFusion's).
    Explain(Box<DfStatement>),
}

fn syntax(e: ParserError) -> CoreError {
    let text = e.to_string();
    CoreError::InvalidInput(format!(
        "malformed SQL: {}",
        text.trim_start_matches("sql parser error: ")
    ))
}

fn peek_word(p: &Parser, n: usize) -> Option<String> {
    match p.peek_nth_token(n).token {
        Token::Word(w) => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

fn eat_word(p: &mut Parser, word: &str) -> bool {
    if peek_word(p, 0).as_deref() == Some(word) {
        p.next_token();
        true
    } else {
        false
    }
}

fn expect_word(p: &mut Parser, word: &str) -> Result<()> {
    if eat_word(p, word) {
        Ok(())
    } else {
        Err(CoreError::InvalidInput(format!(
            "malformed SQL: expected {word}, found {}",
            p.peek_token().token
        )))
    }
}

fn expect_end(p: &mut Parser) -> Result<()> {
    match p.peek_token().token {
        Token::EOF => Ok(()),
        other => Err(CoreError::InvalidInput(format!(
            "malformed SQL: unexpected '{other}' at the end of the statement"
        ))),
    }
}

fn kind_word(word: Option<&str>) -> Option<TableKind> {
    match word {
        Some("USER") => Some(TableKind::User),
        Some("SHARED") => Some(TableKind::Shared),
        Some("STREAM") => Some(TableKind::Stream),
        _ => None,
    }
}

/// `ns.t`, both parts validated: the one reading of a table name in a statement.
pub(crate) fn qualified(name: &ObjectName) -> Result<(String, String)> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| p.to_string().trim_matches('"').to_string())
        .collect();
    match parts.as_slice() {
        [ns, t] => Ok((ns.clone(), t.clone())),
        [t] => Err(CoreError::InvalidInput(format!(
            "table '{t}' needs its namespace: write <namespace>.{t}"
        ))),
        _ => Err(CoreError::InvalidInput(format!(
            "'{name}' is not a <namespace>.<table> name"
        ))),
    }
}

/// A quoted string after `what`, or a refusal showing `example`.
fn quoted(p: &mut Parser, what: &str, example: &str) -> Result<String> {
    match p.next_token().token {
        Token::SingleQuotedString(s) => Ok(s),
        other => Err(CoreError::InvalidInput(format!(
            "malformed SQL: {what} takes a quoted string, e.g. {example}; found {other}"
        ))),
    }
}

fn ident(p: &mut Parser) -> Result<String> {
    Ok(p.parse_identifier().map_err(syntax)?.value)
}

/// Parses one statement.
pub fn parse(sql: &str) -> Result<Command> {
    if let Some(rows) = super::values::read(sql) {
        return Ok(Command::InsertLiteral(rows));
    }
    let dialect = GenericDialect {};
    let mut p = Parser::new(&dialect).try_with_sql(sql).map_err(syntax)?;
    let w0 = peek_word(&p, 0);
    let w1 = peek_word(&p, 1);
    match (w0.as_deref(), w1.as_deref()) {
        (Some("CREATE"), Some("NAMESPACE")) => {
            p.next_token();
            p.next_token();
            let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let name = ident(&mut p)?;
            expect_end(&mut p)?;
            Ok(Command::CreateNamespace { name, if_not_exists })
        }
        (Some("ALTER"), Some("NAMESPACE")) => {
            p.next_token();
            p.next_token();
            let name = ident(&mut p)?;
            expect_word(&mut p, "SET")?;
            let options = p.parse_options(Keyword::OPTIONS).map_err(syntax)?;
            expect_end(&mut p)?;
            if options.is_empty() {
                return Err(CoreError::InvalidInput("malformed SQL: expected SET OPTIONS (key = 'value', ...)".into()));
            }
            Ok(Command::AlterNamespace { name, options: key_values(&options)? })
        }
        (Some("DROP"), Some("NAMESPACE")) => {
            p.next_token();
            p.next_token();
            let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let name = ident(&mut p)?;
            expect_end(&mut p)?;
            Ok(Command::DropNamespace { name, if_exists })
        }
        (Some("SHOW"), Some("NAMESPACES")) => {
            p.next_token();
            p.next_token();
            expect_end(&mut p)?;
            Ok(Command::ShowNamespaces)
        }
        (Some("SHOW"), Some("TABLES")) => {
            p.next_token();
            p.next_token();
            let namespace = if p.parse_keyword(Keyword::IN) || p.parse_keyword(Keyword::FROM) {
                Some(ident(&mut p)?)
            } else {
                None
            };
            expect_end(&mut p)?;
            Ok(Command::ShowTables { namespace })
        }
        (Some("DESCRIBE" | "DESC"), _) => {
            p.next_token();
            eat_word(&mut p, "TABLE");
            let (namespace, table) = qualified(&p.parse_object_name(false).map_err(syntax)?)?;
            expect_end(&mut p)?;
            Ok(Command::DescribeTable { namespace, table })
        }
        (Some("FLUSH"), Some("TABLE")) => {
            p.next_token();
            p.next_token();
            let (namespace, table) = qualified(&p.parse_object_name(false).map_err(syntax)?)?;
            expect_end(&mut p)?;
            Ok(Command::FlushTable { namespace, table })
        }
        (Some("CREATE"), Some("STORAGE")) => {
            p.next_token();
            p.next_token();
            let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let name = ident(&mut p)?;
            expect_word(&mut p, "TYPE")?;
            let location_type = match peek_word(&p, 0).as_deref() {
                Some("FILESYSTEM") => LocationType::Filesystem,
                Some("S3") => LocationType::S3,
                _ => {
                    return Err(CoreError::InvalidInput(format!(
                        "malformed SQL: TYPE is filesystem or s3, found {}",
                        p.peek_token().token
                    )));
                }
            };
            p.next_token();
            expect_word(&mut p, "PATH")?;
            let path = quoted(&mut p, "PATH", "'/var/lib/kalamdb/archive'")?;
            let credentials_ref = if eat_word(&mut p, "CREDENTIALS") {
                Some(quoted(&mut p, "CREDENTIALS", "'profile'")?)
            } else {
                None
            };
            expect_end(&mut p)?;
            Ok(Command::CreateStorage {
                location: NewLocation { name, location_type, path, credentials_ref },
                if_not_exists,
            })
        }
        (Some("ALTER"), Some("STORAGE")) => {
            p.next_token();
            p.next_token();
            let name = ident(&mut p)?;
            expect_word(&mut p, "SET")?;
            let change = if eat_word(&mut p, "PATH") {
                LocationChange::Path(quoted(&mut p, "PATH", "'/var/lib/kalamdb/archive'")?)
            } else if eat_word(&mut p, "CREDENTIALS") {
                if eat_word(&mut p, "NULL") {
                    LocationChange::Credentials(None)
                } else {
                    LocationChange::Credentials(Some(quoted(&mut p, "CREDENTIALS", "'profile' or NULL")?))
                }
            } else {
                return Err(CoreError::InvalidInput(
                    "malformed SQL: expected SET PATH '...' or SET CREDENTIALS 'profile'".into(),
                ));
            };
            expect_end(&mut p)?;
            Ok(Command::AlterStorage { name, change })
        }
        (Some("DROP"), Some("STORAGE")) => {
            p.next_token();
            p.next_token();
            let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let name = ident(&mut p)?;
            expect_end(&mut p)?;
            Ok(Command::DropStorage { name, if_exists })
        }
        (Some("SHOW"), Some("LIVE")) => {
            p.next_token();
            p.next_token();
            expect_word(&mut p, "QUERIES")?;
            expect_end(&mut p)?;
            Ok(Command::ShowLiveQueries)
        }
        (Some("KILL"), Some("LIVE")) => {
            p.next_token();
            p.next_token();
            expect_word(&mut p, "QUERY")?;
            let live_id = quoted(&mut p, "KILL LIVE QUERY", "'u1-c1-notes-q1' (SHOW LIVE QUERIES lists them)")?;
            expect_end(&mut p)?;
            Ok(Command::KillLiveQuery { live_id })
        }
        (Some("SHOW"), Some("STORAGES")) => {
            p.next_token();
            p.next_token();
            expect_end(&mut p)?;
            Ok(Command::ShowStorages)
        }
        (Some("BACKUP"), Some("DATABASE")) => {
            p.next_token();
            p.next_token();
            expect_word(&mut p, "TO")?;
            let repository = match p.next_token().token {
                Token::SingleQuotedString(s) => s,
                other => {
                    return Err(CoreError::InvalidInput(format!(
                        "malformed SQL: expected the repository path as a quoted string, found {other}: BACKUP DATABASE TO '/var/backups/kalamdb'"
                    )));
                }
            };
            let credentials = if eat_word(&mut p, "CREDENTIALS") {
                Some(quoted(&mut p, "CREDENTIALS", "'profile'")?)
            } else {
                None
            };
            let detached = eat_word(&mut p, "DETACHED");
            expect_end(&mut p)?;
            Ok(Command::Backup {
                repository,
                credentials,
                detached,
            })
        }
        (Some("CREATE"), w) if kind_word(w).is_some() => {
            p.next_token();
            p.next_token();
            let kind = kind_word(w).unwrap_or(TableKind::Shared);
            expect_word(&mut p, "TABLE")?;
            parse_create_table(&mut p, kind)
        }
        (Some("CREATE"), Some("TABLE")) => Err(CoreError::InvalidInput(
            "say which kind of table: CREATE USER TABLE, CREATE SHARED TABLE or CREATE STREAM TABLE".into(),
        )),
        (Some("DROP"), w) if kind_word(w).is_some() || w == Some("TABLE") => {
            p.next_token();
            let kind = kind_word(w);
            if kind.is_some() {
                p.next_token();
            }
            expect_word(&mut p, "TABLE")?;
            let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let (namespace, table) = qualified(&p.parse_object_name(false).map_err(syntax)?)?;
            let force = eat_word(&mut p, "FORCE");
            expect_end(&mut p)?;
            Ok(Command::DropTable { kind, namespace, table, if_exists, force })
        }
        (Some("INSERT" | "UPDATE" | "DELETE"), _) => {
            let stmt = p.parse_statement().map_err(syntax)?;
            expect_end(&mut p)?;
            Ok(match stmt {
                s @ Statement::Insert(_) => Command::Insert(Box::new(s)),
                s @ Statement::Update { .. } => Command::Update(Box::new(s)),
                s => Command::Delete(Box::new(s)),
            })
        }
        (Some("EXPLAIN"), _) => explain(sql),
        (Some("SELECT" | "WITH" | "VALUES"), _) => query(&mut p),
        _ if p.peek_token().token == Token::LParen => query(&mut p),
        _ => Err(CoreError::InvalidInput(format!(
            "unsupported statement '{}'; see specs/cli.md for the statements KalamDB runs",
            sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
        ))),
    }
}

/// A whole query statement, as DataFusion's parser reads one (the same tokens and parser).
fn query(p: &mut Parser) -> Result<Command> {
    let stmt = p.parse_statement().map_err(syntax)?;
    expect_end(p)?;
    Ok(Command::Query(Box::new(stmt)))
}

/// An EXPLAIN statement, read by DataFusion's parser.
fn explain(sql: &str) -> Result<Command> {
    let mut statements = DFParser::parse_sql(sql).map_err(|e| match e {
        DataFusionError::SQL(e, _) => syntax(*e),
        other => CoreError::InvalidInput(format!("malformed SQL: {other}")),
    })?;
    match (statements.pop_front(), statements.is_empty()) {
        (Some(statement), true) => Ok(Command::Explain(Box::new(statement))),
        _ => Err(CoreError::InvalidInput(
            "malformed SQL: expected one EXPLAIN statement".into(),
        )),
    }
}

fn key_values(options: &[SqlOption]) -> Result<Vec<(String, String)>> {
    options
        .iter()
        .map(|o| match o {
            SqlOption::KeyValue { key, value } => {
                Ok((key.value.to_ascii_lowercase(), literal_text(value)?))
            }
            other => Err(CoreError::InvalidInput(format!(
                "malformed option '{other}': expected key = 'value'"
            ))),
        })
        .collect()
}

fn literal_text(e: &Expr) -> Result<String> {
    use datafusion::sql::sqlparser::ast::Value;
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Ok(s.clone()),
            Value::Number(n, _) => Ok(n.clone()),
            Value::Boolean(b) => Ok(b.to_string()),
            other => Err(CoreError::InvalidInput(format!(
                "option value {other} must be a string or number"
            ))),
        },
        Expr::Identifier(i) => Ok(i.value.clone()),
        other => Err(CoreError::InvalidInput(format!(
            "option value {other} must be a string or number"
        ))),
    }
}

fn parse_create_table(p: &mut Parser, kind: TableKind) -> Result<Command> {
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let (namespace, name) = qualified(&p.parse_object_name(false).map_err(syntax)?)?;
    validate_name("table", &name)?;
    let (defs, constraints) = p.parse_columns().map_err(syntax)?;
    let options = p.parse_options(Keyword::WITH).map_err(syntax)?;
    expect_end(p)?;
    if defs.is_empty() {
        return Err(CoreError::InvalidInput(format!(
            "table {namespace}.{name} needs at least one column"
        )));
    }

    let mut columns = Vec::new();
    let mut primary_key = None;
    for def in &defs {
        let col = def.name.value.clone();
        if is_system_column(&col) {
            return Err(CoreError::InvalidInput(format!(
                "column '{col}' is a system column; pick another name"
            )));
        }
        validate_column(&col)?;
        if columns.iter().any(|c: &ColumnDef| c.name == col) {
            return Err(CoreError::InvalidInput(format!(
                "column '{col}' is declared twice"
            )));
        }
        let ty = column_type(&def.data_type, &col)?;
        let mut nullable = true;
        for opt in &def.options {
            match &opt.option {
                ColumnOption::NotNull => nullable = false,
                ColumnOption::Null => {}
                ColumnOption::PrimaryKey(_) => {
                    if primary_key.replace(col.clone()).is_some() {
                        return Err(CoreError::InvalidInput(
                            "only one PRIMARY KEY column is supported".into(),
                        ));
                    }
                    nullable = false;
                }
                other => {
                    return Err(CoreError::InvalidInput(format!(
                        "column option '{other}' is not supported"
                    )));
                }
            }
        }
        columns.push(ColumnDef {
            name: col,
            ty,
            nullable,
        });
    }
    for c in &constraints {
        match c {
            TableConstraint::PrimaryKey(pk) if pk.columns.len() == 1 && primary_key.is_none() => {
                let col = pk.columns[0].to_string();
                let Some(def) = columns.iter_mut().find(|d| d.name == col) else {
                    return Err(CoreError::InvalidInput(format!(
                        "PRIMARY KEY names unknown column '{col}'"
                    )));
                };
                def.nullable = false;
                primary_key = Some(col);
            }
            other => {
                return Err(CoreError::InvalidInput(format!(
                    "constraint '{other}' is not supported"
                )));
            }
        }
    }

    let mut table = NewTable {
        namespace,
        name,
        kind,
        columns,
        primary_key,
        storage: None,
        flush_policy: None,
        deleted_retention_hours: None,
        ttl_seconds: None,
        max_buffer: None,
    };
    for (key, value) in key_values(&options)? {
        match key.as_str() {
            "storage" => table.storage = Some(value),
            "flush_policy" => table.flush_policy = Some(parse_flush_policy(&value)?),
            "deleted_retention" => {
                table.deleted_retention_hours = Some(parse_duration_hours(&value)?)
            }
            "ttl_seconds" if kind == TableKind::Stream => {
                table.ttl_seconds = Some(limits::parse_bounded(
                    "TTL_SECONDS",
                    &value,
                    false,
                    limits::MAX_SECONDS,
                    " seconds",
                )?)
            }
            "max_buffer" if kind == TableKind::Stream => {
                table.max_buffer = Some(limits::parse_bounded(
                    "MAX_BUFFER",
                    &value,
                    false,
                    limits::MAX_COUNT,
                    " rows",
                )?)
            }
            "ttl_seconds" | "max_buffer" => {
                return Err(CoreError::InvalidInput(format!(
                    "{} applies to stream tables only",
                    key.to_uppercase()
                )));
            }
            other => {
                return Err(CoreError::InvalidInput(format!(
                    "unknown table option '{other}'; use STORAGE, FLUSH_POLICY, DELETED_RETENTION, TTL_SECONDS or MAX_BUFFER"
                )));
            }
        }
    }
    if kind == TableKind::Stream
        && (table.flush_policy.is_some() || table.deleted_retention_hours.is_some())
    {
        return Err(CoreError::InvalidInput(
            "stream tables are never flushed and have no soft deletes: FLUSH_POLICY and DELETED_RETENTION do not apply".into(),
        ));
    }
    Ok(Command::CreateTable {
        table,
        if_not_exists,
    })
}

fn column_type(ty: &SqlDataType, col: &str) -> Result<ColumnType> {
    let text = ty.to_string();
    ColumnType::from_sql(&text).ok_or_else(|| {
        CoreError::InvalidInput(format!(
            "column '{col}' has unsupported type {text}; use BOOLEAN, INT, BIGINT, DOUBLE, TEXT or TIMESTAMP"
        ))
    })
}

/// `rows:N`, `interval:S`, or `rows:N,interval:S`.
pub fn parse_flush_policy(text: &str) -> Result<FlushPolicy> {
    let bad = || {
        CoreError::InvalidInput(format!(
            "FLUSH_POLICY '{text}' is malformed; use 'rows:N', 'interval:S' or 'rows:N,interval:S'"
        ))
    };
    let (mut rows, mut interval) = (None, None);
    for part in text.split(',') {
        let (k, v) = part.trim().split_once(':').ok_or_else(bad)?;
        match k.trim().to_ascii_lowercase().as_str() {
            "rows" if rows.is_none() => {
                rows = Some(limits::parse_bounded(
                    "FLUSH_POLICY rows",
                    v,
                    false,
                    limits::MAX_COUNT,
                    "",
                )?)
            }
            "interval" if interval.is_none() => {
                interval = Some(limits::parse_bounded(
                    "FLUSH_POLICY interval",
                    v,
                    false,
                    limits::MAX_SECONDS,
                    " seconds",
                )?)
            }
            _ => return Err(bad()),
        }
    }
    Ok(match (rows, interval) {
        (Some(row_limit), None) => FlushPolicy::RowLimit { row_limit },
        (None, Some(interval_seconds)) => FlushPolicy::TimeInterval { interval_seconds },
        (Some(row_limit), Some(interval_seconds)) => FlushPolicy::Combined {
            row_limit,
            interval_seconds,
        },
        (None, None) => return Err(bad()),
    })
}

/// A duration in the one grammar ([`limits::parse_duration`]), rounded up to whole hours, or a
/// bare number of hours.
pub fn parse_duration_hours(text: &str) -> Result<u64> {
    const WHAT: &str = "DELETED_RETENTION";
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return limits::parse_bounded(WHAT, t, true, limits::MAX_HOURS, " hours");
    }
    let seconds = limits::parse_duration(WHAT, t)?.as_secs();
    limits::bounded(
        WHAT,
        seconds.div_ceil(3600),
        true,
        limits::MAX_HOURS,
        " hours",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_database_takes_a_quoted_path_and_an_optional_detached() {
        match parse("BACKUP DATABASE TO '/var/b' DETACHED") {
            Ok(Command::Backup {
                repository,
                credentials: None,
                detached,
            }) => {
                assert_eq!(repository, "/var/b");
                assert!(detached);
            }
            other => panic!("unexpected {other:?}"),
        }
        match parse("BACKUP DATABASE TO 's3://b/p' CREDENTIALS 'prod' DETACHED") {
            Ok(Command::Backup {
                repository,
                credentials: Some(profile),
                detached: true,
            }) => assert_eq!(
                (repository.as_str(), profile.as_str()),
                ("s3://b/p", "prod")
            ),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            parse("backup database to '/b'"),
            Ok(Command::Backup {
                detached: false,
                ..
            })
        ));
        for bad in [
            "BACKUP DATABASE TO /b",
            "BACKUP DATABASE '/b'",
            "BACKUP DATABASE TO '/b' NOW",
            "BACKUP DATABASE TO '/b' CREDENTIALS prod",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn create_table_parses_columns_keys_and_options() {
        let cmd = parse(
            "CREATE USER TABLE IF NOT EXISTS app.notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL, at TIMESTAMP) \
             WITH (STORAGE = '/x/${user_id}/n', FLUSH_POLICY = 'rows:100,interval:60', DELETED_RETENTION = '7d')",
        )
        .expect("parse");
        let Command::CreateTable {
            table,
            if_not_exists,
        } = cmd
        else {
            panic!("wrong command: {cmd:?}")
        };
        assert!(if_not_exists);
        assert_eq!(table.kind, TableKind::User);
        assert_eq!(table.primary_key.as_deref(), Some("id"));
        assert_eq!(table.columns.len(), 3);
        assert!(!table.columns[1].nullable);
        assert_eq!(
            table.flush_policy,
            Some(FlushPolicy::Combined {
                row_limit: 100,
                interval_seconds: 60
            })
        );
        assert_eq!(table.deleted_retention_hours, Some(168));
        assert_eq!(table.storage.as_deref(), Some("/x/${user_id}/n"));
    }

    #[test]
    fn bad_statements_are_refused_with_a_reason() {
        for (sql, needle) in [
            ("CREATE TABLE a.b (x INT)", "which kind"),
            ("CREATE USER TABLE b (x INT)", "namespace"),
            ("CREATE SHARED TABLE a.b (x BLOB)", "unsupported type"),
            (
                "CREATE SHARED TABLE a.b (x INT) WITH (TTL_SECONDS = 5)",
                "stream tables only",
            ),
            (
                "CREATE STREAM TABLE a.b (x INT) WITH (COLOUR = 'red')",
                "unknown table option",
            ),
            ("CREATE SHARED TABLE a.b (_updated INT)", "system column"),
            ("SELEKT 1", "unsupported statement"),
            ("CREATE NAMESPACE a b", "unexpected"),
        ] {
            let err = parse(sql).expect_err(sql).to_string();
            assert!(err.contains(needle), "{sql}: {err}");
        }
    }

    #[test]
    fn flush_policies_and_durations() {
        assert_eq!(
            parse_flush_policy("rows:10").expect("rows"),
            FlushPolicy::RowLimit { row_limit: 10 }
        );
        assert_eq!(
            parse_flush_policy("interval:5").expect("iv"),
            FlushPolicy::TimeInterval {
                interval_seconds: 5
            }
        );
        assert!(parse_flush_policy("rows:0").is_err());
        assert!(parse_flush_policy("rows:1,rows:2").is_err());
        assert_eq!(parse_duration_hours("2d").expect("d"), 48);
        assert_eq!(parse_duration_hours("90m").expect("m"), 2);
        assert!(parse_duration_hours("soon").is_err());
    }
}

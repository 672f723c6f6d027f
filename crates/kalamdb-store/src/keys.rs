//! Key encoding for data column families.
//!
//! The layout is the one every generation of KalamDB wrote (see `specs/format.md`):
//!
//! | column family | key |
//! |---|---|
//! | `user_table:{namespace}:{table}` | `{user_id}:{row_id}`, split on the **first** `:` |
//! | `shared_table:{namespace}:{table}` | `{row_id}` |
//! | `stream_table:{namespace}:{table}` | `{timestamp_ms}:{row_id}`, timestamp in decimal |

use std::fmt;

/// The three kinds of table that hold data in their own column family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableKind {
    User,
    Shared,
    Stream,
}

impl TableKind {
    pub const ALL: [TableKind; 3] = [TableKind::User, TableKind::Shared, TableKind::Stream];

    /// The kind named `text` (`user`, `shared`, `stream`, any case).
    pub fn parse(text: &str) -> Option<TableKind> {
        let lower = text.trim().to_ascii_lowercase();
        TableKind::ALL.into_iter().find(|k| k.as_str() == lower)
    }

    /// The column-family prefix for this kind (`user_table`, ...).
    pub fn cf_prefix(self) -> &'static str {
        match self {
            TableKind::User => "user_table",
            TableKind::Shared => "shared_table",
            TableKind::Stream => "stream_table",
        }
    }

    /// Lowercase name, as written in `system.tables.table_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            TableKind::User => "user",
            TableKind::Shared => "shared",
            TableKind::Stream => "stream",
        }
    }
}

impl fmt::Display for TableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A data column family, named `{kind}_table:{namespace}:{table}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableCf {
    pub kind: TableKind,
    pub namespace: String,
    pub table: String,
}

impl TableCf {
    pub fn new(kind: TableKind, namespace: &str, table: &str) -> Self {
        TableCf {
            kind,
            namespace: namespace.to_string(),
            table: table.to_string(),
        }
    }

    /// The column family's name.
    pub fn name(&self) -> String {
        format!(
            "{}:{}:{}",
            self.kind.cf_prefix(),
            self.namespace,
            self.table
        )
    }

    /// Parses a column-family name; `None` for anything that is not a data column family.
    pub fn parse(name: &str) -> Option<TableCf> {
        let (prefix, rest) = name.split_once(':')?;
        let kind = match prefix {
            "user_table" => TableKind::User,
            "shared_table" => TableKind::Shared,
            "stream_table" => TableKind::Stream,
            _ => return None,
        };
        let (namespace, table) = rest.split_once(':')?;
        if namespace.is_empty() || table.is_empty() {
            return None;
        }
        Some(TableCf::new(kind, namespace, table))
    }
}

/// `{user_id}:{row_id}`.
pub fn user_key(user_id: &str, row_id: &str) -> String {
    format!("{user_id}:{row_id}")
}

/// The prefix shared by every key of one user: `{user_id}:`.
pub fn user_prefix(user_id: &str) -> String {
    format!("{user_id}:")
}

/// Splits a user-table key on its first `:` into `(user_id, row_id)`.
pub fn parse_user_key(key: &str) -> Option<(&str, &str)> {
    let (user, row) = key.split_once(':')?;
    if user.is_empty() || row.is_empty() {
        None
    } else {
        Some((user, row))
    }
}

/// `{timestamp_ms}:{row_id}`.
pub fn stream_key(timestamp_ms: i64, row_id: &str) -> String {
    format!("{timestamp_ms}:{row_id}")
}

/// Splits a stream-table key into `(timestamp_ms, row_id)`.
pub fn parse_stream_key(key: &str) -> Option<(i64, &str)> {
    let (ts, row) = key.split_once(':')?;
    let ts = ts.parse::<i64>().ok()?;
    if row.is_empty() {
        None
    } else {
        Some((ts, row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_keys_split_on_the_first_colon() {
        let key = user_key("alice", "pk:with:colons");
        assert_eq!(parse_user_key(&key), Some(("alice", "pk:with:colons")));
        assert_eq!(parse_user_key("nocolon"), None);
        assert_eq!(parse_user_key(":row"), None);
    }

    #[test]
    fn stream_keys_carry_a_decimal_timestamp() {
        let key = stream_key(1_700_000_000_123, "1700000000123_7");
        assert_eq!(key, "1700000000123:1700000000123_7");
        assert_eq!(
            parse_stream_key(&key),
            Some((1_700_000_000_123, "1700000000123_7"))
        );
        assert_eq!(parse_stream_key("abc:1"), None);
    }

    #[test]
    fn column_family_names_round_trip() {
        for kind in [TableKind::User, TableKind::Shared, TableKind::Stream] {
            let cf = TableCf::new(kind, "app", "messages");
            assert_eq!(TableCf::parse(&cf.name()), Some(cf));
        }
        assert_eq!(TableCf::parse("system_users"), None);
        assert_eq!(TableCf::parse("user_table:app"), None);
        assert_eq!(TableCf::parse("default"), None);
    }
}

//! A direct reader for the commonest INSERT: `INSERT INTO ns.t [(col, ...)] VALUES (literal,
//! ...), ...` with plain identifiers and literal values (numbers, single-quoted strings,
//! TRUE, FALSE, NULL, a minus sign, NOW()). It reads the text once, without tokenizing it for
//! sqlparser and building its syntax tree, which is most of what a large INSERT costs. It
//! takes only what it reads exactly as sqlparser and `dml::literal` would; for anything else
//! (quoted names, comments, other expressions, exponents, escapes, malformed text) it gives
//! up, and sqlparser parses the statement and words any error.
#![deny(
    clippy::arithmetic_side_effects,
    clippy::cast_possible_wrap,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use kalamdb_store::now_ms;
use serde_json::Value;

/// An INSERT of literal rows.
#[derive(Debug, Clone, PartialEq)]
pub struct LiteralInsert {
    pub namespace: String,
    pub table: String,
    /// `None`: every column, in order.
    pub columns: Option<Vec<String>>,
    pub rows: Vec<Vec<Value>>,
}

struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        self.text.get(self.at..).unwrap_or_default()
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn advance(&mut self, n: usize) {
        self.at = self.at.saturating_add(n).min(self.text.len());
    }

    /// Skips blanks; a comment gives up (`None`).
    fn blanks(&mut self) -> Option<()> {
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' => self.advance(1),
                _ => break,
            }
        }
        let rest = self.rest();
        (!rest.starts_with("--") && !rest.starts_with("/*")).then_some(())
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.blanks()?;
        (self.peek() == Some(byte)).then(|| self.advance(1))
    }

    /// A plain identifier, as written: a letter or `_`, then letters, digits and `_`.
    fn ident(&mut self) -> Option<&'a str> {
        self.blanks()?;
        let rest = self.rest();
        let first = rest.as_bytes().first()?;
        if !(first.is_ascii_alphabetic() || *first == b'_') {
            return None;
        }
        let len = rest
            .bytes()
            .position(|b| !(b.is_ascii_alphanumeric() || b == b'_'))
            .unwrap_or(rest.len());
        self.advance(len);
        rest.get(..len)
    }

    fn keyword(&mut self, word: &str) -> Option<()> {
        self.ident()?.eq_ignore_ascii_case(word).then_some(())
    }

    /// One value; `None` for anything not read exactly.
    fn value(&mut self) -> Option<Value> {
        self.blanks()?;
        match self.peek()? {
            b'\'' => self.string().map(Value::from),
            b'-' => {
                self.advance(1);
                // `--` is a comment: given up in `blanks`.
                self.blanks()?;
                match self.number()? {
                    Value::Number(n) => match n.as_i64() {
                        Some(i) => i.checked_neg().map(Value::from),
                        None => n.as_f64().map(|f| Value::from(-f)),
                    },
                    _ => None,
                }
            }
            b'0'..=b'9' => self.number(),
            _ => {
                let word = self.ident()?;
                if word.eq_ignore_ascii_case("true") {
                    Some(Value::Bool(true))
                } else if word.eq_ignore_ascii_case("false") {
                    Some(Value::Bool(false))
                } else if word.eq_ignore_ascii_case("null") {
                    Some(Value::Null)
                } else if word.eq_ignore_ascii_case("now") {
                    self.eat(b'(')?;
                    self.eat(b')')?;
                    Some(Value::from(now_ms()))
                } else {
                    None
                }
            }
        }
    }

    /// Digits, optionally `.` and digits: an integer if it fits, else a double, as
    /// `dml::literal` reads sqlparser's number. Exponents and anything glued on give up.
    fn number(&mut self) -> Option<Value> {
        let rest = self.rest();
        let digits = |s: &str| {
            s.bytes()
                .position(|b| !b.is_ascii_digit())
                .unwrap_or(s.len())
        };
        let whole = digits(rest);
        let mut len = whole;
        if rest.as_bytes().get(len) == Some(&b'.') {
            let fraction = digits(rest.get(len.checked_add(1)?..)?);
            if fraction == 0 {
                return None;
            }
            len = len.checked_add(1)?.checked_add(fraction)?;
        }
        if whole == 0
            || rest
                .as_bytes()
                .get(len)
                .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.')
        {
            return None;
        }
        let text = rest.get(..len)?;
        self.advance(len);
        match text.parse::<i64>() {
            Ok(n) => Some(Value::from(n)),
            Err(_) => text.parse::<f64>().ok().map(Value::from),
        }
    }

    /// A single-quoted string, `''` standing for a quote; a backslash gives up (dialects
    /// differ on it).
    fn string(&mut self) -> Option<String> {
        self.advance(1);
        let mut out = String::new();
        loop {
            let rest = self.rest();
            let stop = rest.find(['\'', '\\'])?;
            out.push_str(rest.get(..stop)?);
            if rest.as_bytes().get(stop) == Some(&b'\\') {
                return None;
            }
            self.advance(stop.checked_add(1)?);
            if self.peek() == Some(b'\'') {
                out.push('\'');
                self.advance(1);
            } else {
                return Some(out);
            }
        }
    }
}

/// Reads `sql` if it is an INSERT of literal rows this reader takes whole.
pub fn read(sql: &str) -> Option<LiteralInsert> {
    let mut c = Cursor { text: sql, at: 0 };
    c.keyword("insert")?;
    c.keyword("into")?;
    let namespace = c.ident()?.to_string();
    c.eat(b'.')?;
    let table = c.ident()?.to_string();
    c.blanks()?;
    let columns = if c.peek() == Some(b'(') {
        c.advance(1);
        let mut names = vec![c.ident()?.to_string()];
        while c.eat(b')').is_none() {
            c.eat(b',')?;
            names.push(c.ident()?.to_string());
        }
        Some(names)
    } else {
        None
    };
    c.keyword("values")?;
    let mut rows = Vec::new();
    loop {
        c.eat(b'(')?;
        let mut row = vec![c.value()?];
        while c.eat(b')').is_none() {
            c.eat(b',')?;
            row.push(c.value()?);
        }
        rows.push(row);
        if c.eat(b',').is_none() {
            break;
        }
    }
    c.blanks()?;
    c.rest().is_empty().then_some(LiteralInsert {
        namespace,
        table,
        columns,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_literal_inserts_and_gives_up_on_the_rest() {
        let read_ok = read(
            "insert INTO App.Notes (id, Body, x) VALUES (1, 'it''s', -2.5), (9223372036854775807, NULL, TRUE),(-3,'',false)",
        )
        .expect("read");
        assert_eq!(read_ok.namespace, "App");
        assert_eq!(read_ok.table, "Notes");
        assert_eq!(
            read_ok.columns,
            Some(vec!["id".into(), "Body".into(), "x".into()])
        );
        assert_eq!(
            read_ok.rows,
            vec![
                vec![json!(1), json!("it's"), json!(-2.5)],
                vec![
                    json!(9_223_372_036_854_775_807_i64),
                    json!(null),
                    json!(true)
                ],
                vec![json!(-3), json!(""), json!(false)],
            ]
        );
        assert_eq!(
            read("INSERT INTO a.b VALUES (99999999999999999999)").map(|r| r.rows),
            Some(vec![vec![json!(1e20)]])
        );
        for other in [
            "INSERT INTO a.b VALUES (1e5)",
            "INSERT INTO a.b VALUES (1 + 1)",
            "INSERT INTO a.b VALUES ('a\\b')",
            "INSERT INTO \"a\".b VALUES (1)",
            "INSERT INTO a.b VALUES (1) -- c",
            "INSERT INTO a.b VALUES (1), ",
            "INSERT INTO a.b VALUES (1) RETURNING id",
            "INSERT INTO a.b SELECT 1",
            "INSERT INTO b VALUES (1)",
            "INSERT INTO a.b VALUES ('unterminated)",
            "INSERT INTO a.b VALUES (--1)",
            "INSERT INTO a.b VALUES (1.)",
            "INSERT INTO a.b VALUES (x)",
            "INSERT INTO a.b () VALUES (1)",
            "UPDATE a.b SET x = 1",
        ] {
            assert_eq!(read(other), None, "{other}");
        }
    }

    /// What sqlparser and `dml::literal` make of the statement's rows.
    fn by_sqlparser(sql: &str) -> Option<Vec<Vec<Value>>> {
        use datafusion::sql::sqlparser::ast::{SetExpr, Statement};
        use datafusion::sql::sqlparser::dialect::GenericDialect;
        use datafusion::sql::sqlparser::parser::Parser;
        let statements = Parser::parse_sql(&GenericDialect {}, sql).ok()?;
        let [Statement::Insert(insert)] = statements.as_slice() else {
            return None;
        };
        let SetExpr::Values(values) = insert.source.as_ref()?.body.as_ref() else {
            return None;
        };
        values
            .rows
            .iter()
            .map(|r| {
                r.content
                    .iter()
                    .map(|e| super::super::dml::literal(e).ok())
                    .collect()
            })
            .collect()
    }

    fn literal_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            "-?[0-9]{1,25}",
            "-?[0-9]{1,6}\\.[0-9]{1,6}",
            "[a-z '\u{e9}]{0,8}".prop_map(|s| format!("'{}'", s.replace('\'', "''"))),
            Just("TRUE".to_string()),
            Just("false".to_string()),
            Just("NULL".to_string()),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 500, failure_persistence: None, ..Default::default() })]

        /// Whatever this reader takes, it reads as sqlparser and `literal` do; and it takes
        /// every statement made only of the forms it knows.
        #[test]
        fn reads_rows_as_sqlparser_does(
            rows in proptest::collection::vec(proptest::collection::vec(literal_text(), 1..4), 1..4),
            gap in "[ \n]{0,2}",
        ) {
            let body: Vec<String> = rows
                .iter()
                .map(|r| format!("({})", r.join(&format!(",{gap}"))))
                .collect();
            let sql = format!("INSERT INTO app.t VALUES{gap}{}", body.join(", "));
            let mine = read(&sql).map(|r| r.rows);
            proptest::prop_assert!(mine.is_some(), "gave up on {}", sql);
            proptest::prop_assert_eq!(mine, by_sqlparser(&sql), "{}", sql);
        }
    }
}

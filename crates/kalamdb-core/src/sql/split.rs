//! Splitting a request body into statements on `;`, with sqlparser's tokenizer (the one that
//! parses them next), so a `;` inside a string, a quoted name or a comment never splits. Each
//! statement is the text between two semicolons exactly as written.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, Tokenizer};

use crate::{CoreError, Result};

/// Splits `text` into trimmed statements; one that holds only blanks and comments is none.
pub fn split_statements(text: &str) -> Result<Vec<String>> {
    // Without a `;` there is nothing to split, and text that begins with neither a blank nor
    // a comment holds code: one statement, without tokenizing it a first time (the parser
    // tokenizes it next).
    let trimmed = text.trim();
    if !text.contains(';')
        && !trimmed.is_empty()
        && !trimmed.starts_with("--")
        && !trimmed.starts_with("/*")
    {
        return Ok(vec![trimmed.to_string()]);
    }
    let tokens = Tokenizer::new(&GenericDialect {}, text)
        .tokenize_with_location()
        .map_err(|e| CoreError::InvalidInput(format!("malformed SQL: {e}")))?;
    let lines: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    // The byte offset of a 1-based line and column (counted in characters).
    let offset = |at: Location| -> Option<usize> {
        let line = usize::try_from(at.line).ok()?.checked_sub(1)?;
        let column = usize::try_from(at.column).ok()?.checked_sub(1)?;
        let start = *lines.get(line)?;
        let rest = text.get(start..)?;
        Some(
            start
                + rest
                    .char_indices()
                    .nth(column)
                    .map_or(rest.len(), |(i, _)| i),
        )
    };
    let mut out = Vec::new();
    let (mut start, mut has_code) = (0, false);
    for t in tokens {
        match t.token {
            Token::SemiColon => {
                let end = offset(t.span.start).ok_or_else(|| {
                    CoreError::InvalidInput("malformed SQL: a `;` out of place".into())
                })?;
                push_statement(&mut out, text.get(start..end), has_code);
                (start, has_code) = (end + 1, false);
            }
            Token::Whitespace(_) => {}
            _ => has_code = true,
        }
    }
    push_statement(&mut out, text.get(start..), has_code);
    Ok(out)
}

fn push_statement(out: &mut Vec<String>, statement: Option<&str>, has_code: bool) {
    if let Some(s) = statement
        .map(str::trim)
        .filter(|s| has_code && !s.is_empty())
    {
        out.push(s.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semicolons_inside_strings_and_comments_do_not_split() {
        let stmts = split_statements(
            "INSERT INTO a.b VALUES ('x;y', 'it''s; fine'); -- trailing; comment\n SELECT 1 /* a;b */ ; ;",
        )
        .expect("splits");
        assert_eq!(
            stmts,
            vec![
                "INSERT INTO a.b VALUES ('x;y', 'it''s; fine')",
                "-- trailing; comment\n SELECT 1 /* a;b */"
            ]
        );
        let quoted = split_statements(r#"SELECT "a;b" FROM t; SELECT 2"#).expect("splits");
        // One statement, no `;`: the same answer as the tokenizer's.
        assert_eq!(
            split_statements("  SELECT 1 -- done\n").expect("splits"),
            vec!["SELECT 1 -- done"]
        );
        assert_eq!(
            split_statements(" -- only a comment\n /* and another */ ").expect("splits"),
            Vec::<String>::new()
        );
        assert_eq!(quoted, vec![r#"SELECT "a;b" FROM t"#, "SELECT 2"]);
    }

    #[test]
    fn empty_input_has_no_statements() {
        assert!(split_statements(" ; ;\n").expect("splits").is_empty());
        assert!(
            split_statements("-- only; a comment\n;")
                .expect("splits")
                .is_empty()
        );
        let multi = split_statements("SELECT 'é;ü'; SELECT\n  2").expect("splits");
        assert_eq!(multi, vec!["SELECT 'é;ü'", "SELECT\n  2"]);
    }

    #[test]
    fn an_unterminated_string_is_malformed_not_a_statement() {
        let err = split_statements("SELECT 'oops; SELECT 1").expect_err("unterminated");
        assert!(err.to_string().contains("malformed SQL"), "{err}");
    }
}

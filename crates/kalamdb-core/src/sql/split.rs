//! Splitting a request body into statements on `;`, outside quotes and comments.

/// Splits `text` into trimmed, non-empty statements.
pub fn split_statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                current.push(c);
                // A doubled quote inside a quoted string is an escaped quote: the loop
                // closes and immediately reopens the string, which keeps both characters.
                for q in chars.by_ref() {
                    current.push(q);
                    if q == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for q in chars.by_ref() {
                    if q == '\n' {
                        current.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for q in chars.by_ref() {
                    if prev == '*' && q == '/' {
                        break;
                    }
                    prev = q;
                }
                current.push(' ');
            }
            ';' => {
                push_statement(&mut out, &current);
                current.clear();
            }
            _ => current.push(c),
        }
    }
    push_statement(&mut out, &current);
    out
}

fn push_statement(out: &mut Vec<String>, s: &str) {
    let s = s.trim();
    if !s.is_empty() {
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
        );
        assert_eq!(
            stmts,
            vec!["INSERT INTO a.b VALUES ('x;y', 'it''s; fine')", "SELECT 1"]
        );
    }

    #[test]
    fn empty_input_has_no_statements() {
        assert!(split_statements(" ; ;\n").is_empty());
    }
}

//! Validation of the names users give namespaces, tables, columns and users.

use datafusion::sql::sqlparser::ast::Ident;

use crate::{CoreError, Result};

/// Namespace and table names match `^[a-z][a-z0-9_]*$`, at most 64 characters.
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(CoreError::InvalidInput(format!(
            "invalid {what} name '{name}': use lowercase letters, digits and '_', starting with a letter (^[a-z][a-z0-9_]*$)"
        )))
    }
}

/// Namespace names additionally may not be `system`.
pub fn validate_namespace(name: &str) -> Result<()> {
    validate_name("namespace", name)?;
    if name == "system" {
        return Err(CoreError::InvalidInput(
            "'system' is a reserved namespace; pick another name".into(),
        ));
    }
    Ok(())
}

/// Column names: like table names, but must not start with `_` (system columns do).
pub fn validate_column(name: &str) -> Result<()> {
    validate_name("column", name)
}

/// User ids become key prefixes and path segments: no `:`, `/`, `\`, `..` or control
/// characters, and at most 128 bytes.
pub fn validate_user_id(user_id: &str) -> Result<()> {
    let bad = user_id.is_empty()
        || user_id.len() > 128
        || user_id == "."
        || user_id == ".."
        || user_id
            .chars()
            .any(|c| c == ':' || c == '/' || c == '\\' || c.is_control());
    if bad {
        return Err(CoreError::InvalidInput(format!(
            "invalid user id '{user_id}': it may not be empty, '.' or '..', or contain ':', '/', '\\' or control characters"
        )));
    }
    Ok(())
}

/// An identifier in a query as DataFusion resolves it: an unquoted one is lowercased, a
/// quoted one kept as written. For code that reads a query DataFusion would also plan, so
/// both name the same table and columns.
pub fn resolved(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_pattern() {
        for ok in ["a", "app", "app_2", "x9"] {
            assert!(validate_name("table", ok).is_ok(), "{ok}");
        }
        for bad in ["", "App", "9a", "_a", "a-b", "a.b", "ä"] {
            assert!(validate_name("table", bad).is_err(), "{bad}");
        }
        assert!(validate_namespace("system").is_err());
    }

    #[test]
    fn user_ids_cannot_escape_their_prefix_or_folder() {
        assert!(validate_user_id("alice").is_ok());
        assert!(validate_user_id("9f1c-uuid").is_ok());
        for bad in ["", "a:b", "../x", "a/b", ".."] {
            assert!(validate_user_id(bad).is_err(), "{bad}");
        }
    }
}

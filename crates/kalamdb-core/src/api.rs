//! kalamd's HTTP API on the wire: `/v1/api/sql`'s request and response, and the error codes.
//! kalamd serves these types and kalamctl's online client (`--server`) reads them, so the two
//! cannot drift apart. `specs/http.md` is the contract.

use serde::{Deserialize, Serialize};

use crate::{ErrorKind, QueryResult};

/// The body of `POST /v1/api/sql`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    /// One or more statements.
    pub sql: String,
}

/// Its response: `{"status": "success", ...}` or `{"status": "error", "error": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum SqlResponse {
    Success {
        /// One per statement, in order.
        results: Vec<QueryResult>,
        execution_time_ms: u64,
    },
    Error {
        error: ApiError,
    },
}

/// An error as kalamd sends it: a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// See [`WireCode`]; a client reads codes it does not know as `internal`.
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(code: WireCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code: code.as_str().to_string(),
            message: message.into(),
        }
    }

    /// The code, read leniently: one this build does not know is `internal`.
    pub fn wire_code(&self) -> WireCode {
        WireCode::parse(&self.code).unwrap_or(WireCode::Kind(ErrorKind::Internal))
    }
}

/// Every error code kalamd answers with: an engine failure's [`ErrorKind`], or one of the
/// HTTP layer's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireCode {
    Kind(ErrorKind),
    /// No bearer token, or an unknown one (401).
    Unauthorized,
    /// The request ran longer than `limits.request_timeout_seconds` (408).
    Timeout,
    /// The body is larger than `limits.max_body_bytes` (413).
    TooLarge,
    /// kalamd is opening its data directory or shutting down (503).
    Unavailable,
}

impl WireCode {
    const HTTP_ONLY: [WireCode; 4] = [
        WireCode::Unauthorized,
        WireCode::Timeout,
        WireCode::TooLarge,
        WireCode::Unavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WireCode::Kind(kind) => kind.code(),
            WireCode::Unauthorized => "unauthorized",
            WireCode::Timeout => "timeout",
            WireCode::TooLarge => "too_large",
            WireCode::Unavailable => "unavailable",
        }
    }

    pub fn parse(code: &str) -> Option<WireCode> {
        ErrorKind::from_code(code)
            .map(WireCode::Kind)
            .or_else(|| WireCode::HTTP_ONLY.into_iter().find(|c| c.as_str() == code))
    }

    pub fn http_status(self) -> u16 {
        match self {
            WireCode::Kind(kind) => kind.http_status(),
            WireCode::Unauthorized => 401,
            WireCode::Timeout => 408,
            WireCode::TooLarge => 413,
            WireCode::Unavailable => 503,
        }
    }

    /// kalamctl's exit code when kalamd answers with this code.
    pub fn exit_code(self) -> u8 {
        match self {
            WireCode::Kind(kind) => kind.exit_code(),
            WireCode::Unauthorized | WireCode::TooLarge => 2,
            WireCode::Timeout | WireCode::Unavailable => 5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wire_code_round_trips_and_is_unique() {
        let all: Vec<WireCode> = ErrorKind::ALL
            .into_iter()
            .map(WireCode::Kind)
            .chain(WireCode::HTTP_ONLY)
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        for code in &all {
            assert_eq!(WireCode::parse(code.as_str()), Some(*code));
            assert!(seen.insert(code.as_str()), "{} twice", code.as_str());
        }
        let unknown = ApiError {
            code: "from_the_future".into(),
            message: String::new(),
        };
        assert_eq!(unknown.wire_code(), WireCode::Kind(ErrorKind::Internal));
    }

    #[test]
    fn responses_have_the_documented_shape() {
        let ok = SqlResponse::Success {
            results: vec![QueryResult::done(1, "1 row(s) inserted")],
            execution_time_ms: 3,
        };
        let text = serde_json::to_string(&ok).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"status":"success","results":[{"columns":[],"rows":[],"row_count":1,"message":"1 row(s) inserted"}],"execution_time_ms":3}"#
        );
        let err = SqlResponse::Error {
            error: ApiError::new(WireCode::Kind(ErrorKind::Locked), "held"),
        };
        let text = serde_json::to_string(&err).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"status":"error","error":{"code":"locked","message":"held"}}"#
        );
        let back: SqlResponse = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, err);
    }
}

//! Every expected failure maps to one deliberate SQLSTATE; a panic (XX000) is a bug.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FredError {
    /// A bad value or shape: 22023.
    #[error("fred: {0}")]
    BadValue(String),
    /// Over a configured cap: 22001 (PostgREST answers 400; class 54 would be 500).
    #[error("fred: {0}")]
    OverCap(String),
}

impl FredError {
    pub fn sqlstate(&self) -> PgSqlErrorCode {
        match self {
            FredError::BadValue(_) => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            FredError::OverCap(_) => PgSqlErrorCode::ERRCODE_STRING_DATA_RIGHT_TRUNCATION,
        }
    }

    /// Raise as a Postgres ERROR; never returns.
    pub fn raise(self) -> ! {
        let code = self.sqlstate();
        ErrorReport::new(code, self.to_string(), "fred").report(PgLogLevel::ERROR);
        unreachable!("ereport(ERROR) does not return")
    }
}

pub fn bad(msg: impl Into<String>) -> FredError {
    FredError::BadValue(msg.into())
}

pub type Result<T> = std::result::Result<T, FredError>;

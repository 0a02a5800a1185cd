//! The one error type of the CLI: a one-line message and the exit code it maps to (1 failure,
//! 2 usage).

use std::fmt;

/// A failed command: printed as `error: {message}` on stderr, then the process exits with `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    /// A runtime failure (exit 1): unreachable gateway, an API error, an unknown environment.
    pub fn failure(message: impl Into<String>) -> Self {
        CliError {
            code: 1,
            message: message.into(),
        }
    }

    /// A usage error (exit 2): a missing flag on a non-TTY, a malformed `--entitle`.
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            code: 2,
            message: message.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Shorthand for results of CLI operations.
pub type Result<T> = std::result::Result<T, CliError>;

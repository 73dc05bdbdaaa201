//! Error plumbing shared by every layer: the cause an adapter failure keeps for the logs, and
//! a display of an error with its whole source chain.
//!
//! Neutral ground: the ports, the adapters, the HTTP edge and the Lambda glue all use it, so
//! it belongs to none of them.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// The underlying cause of an adapter failure, kept for logs (never shown to clients).
/// `Arc` so one failure can be shared: the schema cache hands the same error to every request
/// that waited on one store read, and a batch hands it to every item of a failed call.
pub type Cause = Arc<dyn Error + Send + Sync + 'static>;

/// Wraps any error as a [`Cause`].
pub fn cause(error: impl Error + Send + Sync + 'static) -> Cause {
    Arc::new(error)
}

/// Displays an error followed by every `source()` below it: `outer: middle: root`.
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_chain_shows_every_source_in_order() {
        let error = Outer(std::io::Error::other("root cause"));
        assert_eq!(ErrorChain(&error).to_string(), "outer: root cause");
    }
}

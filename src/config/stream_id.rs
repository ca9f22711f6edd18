//! Stream identifiers, validated once when the config is read.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A stream's unique name: 1 to 64 characters of `[A-Za-z0-9_-]`, safe in URLs and logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(Arc<str>);

impl StreamId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StreamId {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.is_empty() || s.len() > 64 {
            return Err(format!("stream id `{s}` must be 1 to 64 characters long"));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!(
                "stream id `{s}` has `{c}`: use letters, digits, `-` and `_` only"
            ));
        }
        Ok(Self(s.into()))
    }
}

impl From<StreamId> for String {
    fn from(id: StreamId) -> Self {
        id.0.to_string()
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names_and_rejects_others() {
        assert!(StreamId::try_from("cam-0_a".to_string()).is_ok());
        assert!(StreamId::try_from(String::new()).is_err());
        let err = StreamId::try_from("cam/0".to_string()).unwrap_err();
        assert!(err.contains("`/`"), "{err}");
        assert!(StreamId::try_from("x".repeat(65)).is_err());
    }
}

//! The distribution error body: `{"errors":[{"code","message","detail"}]}`.
//! <https://github.com/opencontainers/distribution-spec/blob/main/spec.md#error-codes>

use std::fmt;

/// The most bytes of an error body read: enough for any real diagnostic, and a hostile
/// registry cannot make us buffer more.
pub const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// The errors a registry reported.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct RegistryErrorBody {
    /// One entry per problem.
    #[serde(default)]
    pub errors: Vec<RegistryError>,
}

/// One error from a registry.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct RegistryError {
    /// The code, e.g. `MANIFEST_UNKNOWN`.
    #[serde(default)]
    pub code: String,
    /// The human message.
    #[serde(default)]
    pub message: String,
    /// Free-form detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

impl RegistryErrorBody {
    /// Parses a body, or `None` when it isn't the distribution error shape.
    pub(crate) fn parse(bytes: &[u8]) -> Option<RegistryErrorBody> {
        serde_json::from_slice::<RegistryErrorBody>(bytes)
            .ok()
            .filter(|b| !b.errors.is_empty())
    }

    /// Whether any error has this code.
    pub fn has_code(&self, code: &str) -> bool {
        self.errors.iter().any(|e| e.code == code)
    }
}

impl fmt::Display for RegistryErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}", e.code)?;
            if !e.message.is_empty() {
                write!(f, " ({})", e.message)?;
            }
            if let Some(detail) = &e.detail {
                if !detail.is_null() {
                    let text = detail.to_string();
                    let short: String = text.chars().take(200).collect();
                    write!(f, " [{short}]")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_distribution_errors() {
        let body = RegistryErrorBody::parse(
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#,
        )
        .unwrap();
        assert!(body.has_code("MANIFEST_UNKNOWN"));
        assert_eq!(
            body.to_string(),
            r#"MANIFEST_UNKNOWN (manifest unknown) [{"Tag":"x"}]"#
        );
        assert!(RegistryErrorBody::parse(b"<html>502</html>").is_none());
        assert!(RegistryErrorBody::parse(br#"{"errors":[]}"#).is_none());
    }
}

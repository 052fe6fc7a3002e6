//! Why a configuration was refused. Every message names the key (or the
//! environment variable) at fault, in the style of Kafka's INVALID_CONFIG
//! messages, so the broker can return `Display` as the response's
//! `error_message` unchanged.

/// A configuration refused at load time, on a topic override, or on a dynamic
/// update.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The key is not a configuration Runnel knows.
    #[error("Unknown configuration name: {key}")]
    Unknown {
        /// The key as given.
        key: String,
    },
    /// The value does not parse as the key's type or fails its validator.
    #[error("Invalid value {value} for configuration {key}: {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// The value as given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// The key cannot change while the broker runs.
    #[error("Cannot update configuration {key} dynamically: it is read-only and takes effect only at startup")]
    ReadOnly {
        /// The key.
        key: String,
    },
    /// The key may change per broker but not as a cluster-wide default.
    #[error("Cannot update configuration {key} as a cluster-wide default: it can only be set per broker")]
    PerBrokerOnly {
        /// The key.
        key: String,
    },
    /// A `RUNNEL_` environment variable that maps to no configuration.
    #[error("Environment variable {variable} maps to {key}, which is not a Runnel configuration")]
    UnknownEnvironmentVariable {
        /// The variable's name.
        variable: String,
        /// The key it mapped to.
        key: String,
    },
    /// The same key given twice in one source (e.g. a flat and a nested TOML
    /// spelling).
    #[error("Configuration {key} is given more than once in {source_name}")]
    Duplicate {
        /// The key.
        key: String,
        /// Where: "the configuration file", …
        source_name: String,
    },
    /// The configuration file is not valid TOML, or holds a value of a kind
    /// no configuration takes (a date, an array of tables).
    #[error("Invalid configuration file: {message}")]
    Toml {
        /// The parser's or Runnel's explanation.
        message: String,
    },
    /// A command-line override not of the form `name=value`.
    #[error("Invalid configuration override {argument}: expected name=value")]
    MalformedOverride {
        /// The argument as given.
        argument: String,
    },
}

impl ConfigError {
    /// The key the error is about, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Unknown { key }
            | ConfigError::Invalid { key, .. }
            | ConfigError::ReadOnly { key }
            | ConfigError::PerBrokerOnly { key }
            | ConfigError::UnknownEnvironmentVariable { key, .. }
            | ConfigError::Duplicate { key, .. } => Some(key),
            ConfigError::Toml { .. } | ConfigError::MalformedOverride { .. } => None,
        }
    }

    pub(crate) fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unknown(key: &str) -> ConfigError {
        ConfigError::Unknown {
            key: key.to_string(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn invalid_reads_like_kafka() {
        let err = ConfigError::invalid("retention.ms", "-5", "Value must be at least -1");
        assert_eq!(
            err.to_string(),
            "Invalid value -5 for configuration retention.ms: Value must be at least -1"
        );
        assert_eq!(err.key(), Some("retention.ms"));
    }

    #[test]
    fn every_keyed_error_names_its_key() {
        let errors = [
            ConfigError::unknown("foo.bar"),
            ConfigError::ReadOnly {
                key: "foo.bar".into(),
            },
            ConfigError::PerBrokerOnly {
                key: "foo.bar".into(),
            },
            ConfigError::Duplicate {
                key: "foo.bar".into(),
                source_name: "the configuration file".into(),
            },
        ];
        for err in errors {
            assert!(err.to_string().contains("foo.bar"), "{err}");
        }
        let env = ConfigError::UnknownEnvironmentVariable {
            variable: "RUNNEL_FOO_BAR".into(),
            key: "foo.bar".into(),
        };
        assert!(env.to_string().contains("RUNNEL_FOO_BAR"));
    }
}

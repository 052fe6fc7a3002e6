//! Where a broker's static configuration comes from, lowest precedence first:
//! built-in defaults, the TOML file, `RUNNEL_*` environment variables, and
//! command-line overrides. This module turns each source into `(key, value)`
//! text pairs; [`super::broker::BrokerConfig::load`] parses and validates them.
//!
//! # TOML
//!
//! Keys may be written flat and quoted (`"log.retention.ms" = 1000`) or
//! nested (`[log]` then `retention.ms = 1000`, which TOML reads as the table
//! path `log.retention.ms`); both name `log.retention.ms`. Values may be
//! integers, floats, booleans, strings, or arrays of those (for lists).
//!
//! # Environment
//!
//! `RUNNEL_LOG_RETENTION_MS=1000` sets `log.retention.ms`: the `RUNNEL_` prefix
//! is dropped, the rest lower-cased and every `_` turned into `.`. No Kafka
//! key Runnel accepts contains `_`, so the mapping is unambiguous. A `RUNNEL_`
//! variable that maps to no key is an error naming the variable, so a typo
//! is caught rather than silently ignored, except the names in
//! [`RESERVED_ENV_VARS`]: `RUNNEL_LOG` is the tracing filter (like
//! `RUST_LOG`), and `RUNNEL_BIN` names the binary for the compatibility
//! tests, which start brokers that inherit their environment.

use super::error::ConfigError;

/// The prefix of environment variables that configure the broker.
pub const ENV_PREFIX: &str = "RUNNEL_";

/// `RUNNEL_` variables that are not configuration and are ignored by
/// [`super::broker::BrokerConfig::load`].
pub const RESERVED_ENV_VARS: &[&str] = &["RUNNEL_BIN", "RUNNEL_LOG"];

/// The raw inputs of [`super::broker::BrokerConfig::load`].
#[derive(Clone, Debug, Default)]
pub struct ConfigSources {
    /// The parsed configuration file, if any (see
    /// [`super::broker::BrokerConfig::from_toml_str`]).
    pub file: Option<toml::Table>,
    /// The process environment (all of it is fine: only `RUNNEL_` variables
    /// are read).
    pub env: Vec<(String, String)>,
    /// Command-line overrides as `(key, value)`, applied last, in order.
    pub overrides: Vec<(String, String)>,
}

impl ConfigSources {
    /// Splits a command-line override `name=value` (the value may contain
    /// `=`; surrounding spaces of the name are dropped).
    pub fn parse_override(argument: &str) -> Result<(String, String), ConfigError> {
        match argument.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => {
                Ok((name.trim().to_string(), value.to_string()))
            }
            _ => Err(ConfigError::MalformedOverride {
                argument: argument.to_string(),
            }),
        }
    }
}

/// The key an environment variable names, if it is a configuration variable:
/// `RUNNEL_LOG_RETENTION_MS` → `log.retention.ms`. `None` for variables
/// without the prefix and for [`RESERVED_ENV_VARS`].
pub fn env_var_key(variable: &str) -> Option<String> {
    if RESERVED_ENV_VARS.contains(&variable) {
        return None;
    }
    let rest = variable.strip_prefix(ENV_PREFIX)?;
    Some(rest.to_ascii_lowercase().replace('_', "."))
}

/// Parses TOML text into a table, mapping syntax errors to
/// [`ConfigError::Toml`].
pub(crate) fn parse_toml(text: &str) -> Result<toml::Table, ConfigError> {
    toml::from_str(text).map_err(|err| ConfigError::Toml {
        message: err.to_string().trim_end().to_string(),
    })
}

/// Flattens a TOML table into `(dotted key, value text)` pairs, refusing a key
/// given twice (flat and nested) and values no configuration takes.
pub(crate) fn flatten_toml(table: &toml::Table) -> Result<Vec<(String, String)>, ConfigError> {
    let mut pairs = Vec::new();
    flatten_into(table, "", &mut pairs)?;
    let mut seen = std::collections::BTreeSet::new();
    for (key, _) in &pairs {
        if !seen.insert(key.as_str()) {
            return Err(ConfigError::Duplicate {
                key: key.clone(),
                source_name: "the configuration file".into(),
            });
        }
    }
    Ok(pairs)
}

fn flatten_into(
    table: &toml::Table,
    prefix: &str,
    pairs: &mut Vec<(String, String)>,
) -> Result<(), ConfigError> {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            toml::Value::Table(inner) => flatten_into(inner, &key, pairs)?,
            toml::Value::Array(items) => {
                let texts = items
                    .iter()
                    .map(|item| scalar_text(&key, item))
                    .collect::<Result<Vec<_>, _>>()?;
                pairs.push((key, texts.join(",")));
            }
            scalar => {
                let text = scalar_text(&key, scalar)?;
                pairs.push((key, text));
            }
        }
    }
    Ok(())
}

fn scalar_text(key: &str, value: &toml::Value) -> Result<String, ConfigError> {
    match value {
        toml::Value::String(text) => Ok(text.clone()),
        toml::Value::Integer(number) => Ok(number.to_string()),
        toml::Value::Float(number) => Ok(number.to_string()),
        toml::Value::Boolean(flag) => Ok(flag.to_string()),
        toml::Value::Datetime(_) | toml::Value::Array(_) | toml::Value::Table(_) => {
            Err(ConfigError::Toml {
                message: format!(
                    "{key}: expected an integer, float, boolean, string or array of those"
                ),
            })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn env_vars_map_to_dotted_keys() {
        assert_eq!(
            env_var_key("RUNNEL_LOG_RETENTION_MS").as_deref(),
            Some("log.retention.ms")
        );
        assert_eq!(env_var_key("RUNNEL_LOG"), None);
        assert_eq!(env_var_key("RUNNEL_BIN"), None);
        assert_eq!(env_var_key("HOME"), None);
    }

    #[test]
    fn flat_and_nested_toml_keys_agree() {
        let flat = parse_toml("\"log.retention.ms\" = 1000").unwrap();
        let nested = parse_toml("[log]\nretention.ms = 1000").unwrap();
        assert_eq!(flatten_toml(&flat).unwrap(), flatten_toml(&nested).unwrap());
        let both = parse_toml("\"log.retention.ms\" = 1\n[log]\nretention.ms = 2").unwrap();
        assert!(matches!(
            flatten_toml(&both),
            Err(ConfigError::Duplicate { key, .. }) if key == "log.retention.ms"
        ));
    }

    #[test]
    fn arrays_become_lists_and_dates_are_refused() {
        let table = parse_toml("\"process.roles\" = [\"broker\", \"controller\"]").unwrap();
        assert_eq!(
            flatten_toml(&table).unwrap(),
            vec![("process.roles".to_string(), "broker,controller".to_string())]
        );
        let table = parse_toml("when = 1979-05-27").unwrap();
        assert!(flatten_toml(&table).is_err());
        assert!(parse_toml("not toml =").is_err());
    }

    #[test]
    fn overrides_split_on_the_first_equals() {
        assert_eq!(
            ConfigSources::parse_override("a.b=c=d").unwrap(),
            ("a.b".to_string(), "c=d".to_string())
        );
        assert!(ConfigSources::parse_override("novalue").is_err());
        assert!(ConfigSources::parse_override("=x").is_err());
    }
}

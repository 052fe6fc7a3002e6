//! A configuration value parsed as its key's type and checked by its
//! validator. Parsing follows Kafka's rules: surrounding whitespace is
//! ignored, booleans are case-insensitive, lists split on commas with the
//! spaces around each element dropped, and the empty text is the empty list.

use std::fmt;

use super::def::{ConfigDef, ConfigType, Validator};
use super::error::ConfigError;

/// A parsed, validated configuration value.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigValue {
    /// A `boolean` value.
    Boolean(bool),
    /// A `string` value.
    String(String),
    /// An `int` value.
    Int(i32),
    /// A `short` value.
    Short(i16),
    /// A `long` value.
    Long(i64),
    /// A `double` value.
    Double(f64),
    /// A `list` value.
    List(Vec<String>),
    /// A `password` value; `Display` hides it.
    Password(String),
    /// A `class` value (a name; never loaded).
    Class(String),
}

impl ConfigValue {
    /// Parses `raw` as `def`'s type and checks `def`'s validator. The error
    /// names `def.name` and quotes `raw`.
    pub fn parse(def: &ConfigDef, raw: &str) -> Result<ConfigValue, ConfigError> {
        let trimmed = raw.trim();
        let invalid = |reason: String| ConfigError::invalid(def.name, raw, reason);
        let value = match def.config_type {
            ConfigType::Boolean => {
                if trimmed.eq_ignore_ascii_case("true") {
                    ConfigValue::Boolean(true)
                } else if trimmed.eq_ignore_ascii_case("false") {
                    ConfigValue::Boolean(false)
                } else {
                    return Err(invalid("Expected value to be either true or false".into()));
                }
            }
            ConfigType::String => ConfigValue::String(trimmed.to_string()),
            ConfigType::Int => ConfigValue::Int(
                trimmed
                    .parse()
                    .map_err(|_| invalid("Expected value to be a 32-bit integer".into()))?,
            ),
            ConfigType::Short => ConfigValue::Short(
                trimmed
                    .parse()
                    .map_err(|_| invalid("Expected value to be a 16-bit integer".into()))?,
            ),
            ConfigType::Long => ConfigValue::Long(
                trimmed
                    .parse()
                    .map_err(|_| invalid("Expected value to be a 64-bit integer".into()))?,
            ),
            ConfigType::Double => {
                let parsed: f64 = trimmed
                    .parse()
                    .map_err(|_| invalid("Expected value to be a double".into()))?;
                if parsed.is_nan() {
                    return Err(invalid("Expected value to be a number".into()));
                }
                ConfigValue::Double(parsed)
            }
            ConfigType::List => ConfigValue::List(split_list(trimmed)),
            // Passwords keep their exact text: spaces may be part of a secret.
            ConfigType::Password => ConfigValue::Password(raw.to_string()),
            ConfigType::Class => ConfigValue::Class(trimmed.to_string()),
        };
        value.check(def).map_err(invalid)?;
        Ok(value)
    }

    /// Checks the validator of `def` against an already-typed value.
    fn check(&self, def: &ConfigDef) -> Result<(), String> {
        match def.validator {
            Validator::Any => Ok(()),
            Validator::Range { min, max } => {
                let Some(number) = self.as_i64() else {
                    return Ok(());
                };
                if let Some(min) = min {
                    if number < min {
                        return Err(format!("Value must be at least {min}"));
                    }
                }
                if let Some(max) = max {
                    if number > max {
                        return Err(format!("Value must be no more than {max}"));
                    }
                }
                Ok(())
            }
            Validator::RangeOr { min, max, or } => match self.as_i64() {
                Some(number) if number == or || (min..=max).contains(&number) => Ok(()),
                Some(_) => Err(format!("Value must be between {min} and {max}, or {or}")),
                None => Ok(()),
            },
            Validator::DoubleRange { min, max } => match self.as_f64() {
                Some(number) if number < min => Err(format!("Value must be at least {min}")),
                Some(number) if number > max => Err(format!("Value must be no more than {max}")),
                _ => Ok(()),
            },
            Validator::OneOf(names) => match self.as_str() {
                Some(text) if names.contains(&text) => Ok(()),
                Some(_) => Err(format!("String must be one of: {}", names.join(", "))),
                None => Ok(()),
            },
            Validator::ListOf {
                allowed,
                allow_empty,
            } => {
                let Some(items) = self.as_list() else {
                    return Ok(());
                };
                if items.is_empty() && !allow_empty {
                    return Err("Empty list is not allowed".into());
                }
                match items.iter().find(|item| !allowed.contains(&item.as_str())) {
                    Some(_) => Err(format!("String must be one of: {}", allowed.join(", "))),
                    None => Ok(()),
                }
            }
            Validator::Custom { check, .. } => check(&self.to_config_string()),
        }
    }

    /// The value as configuration text, in canonical form: what
    /// DescribeConfigs returns and what parses back to an equal value.
    /// Passwords come out in clear: hide them with [`ConfigDef::sensitive`].
    pub fn to_config_string(&self) -> String {
        match self {
            ConfigValue::Boolean(value) => value.to_string(),
            ConfigValue::String(value)
            | ConfigValue::Password(value)
            | ConfigValue::Class(value) => value.clone(),
            ConfigValue::Int(value) => value.to_string(),
            ConfigValue::Short(value) => value.to_string(),
            ConfigValue::Long(value) => value.to_string(),
            // `{:?}` keeps a ".0" on whole numbers and, upper-cased, writes
            // exponents as Java's Double.toString does ("1.7976931348623157E308").
            ConfigValue::Double(value) => format!("{value:?}").replace('e', "E"),
            ConfigValue::List(items) => items.join(","),
        }
    }

    /// The value of a `boolean`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            ConfigValue::Boolean(value) => Some(*value),
            _ => None,
        }
    }

    /// The value of an `int`, `short` or `long`, widened.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ConfigValue::Int(value) => Some(i64::from(*value)),
            ConfigValue::Short(value) => Some(i64::from(*value)),
            ConfigValue::Long(value) => Some(*value),
            _ => None,
        }
    }

    /// The value of a `double`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ConfigValue::Double(value) => Some(*value),
            _ => None,
        }
    }

    /// The text of a `string`, `password` or `class`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            ConfigValue::String(value)
            | ConfigValue::Password(value)
            | ConfigValue::Class(value) => Some(value),
            _ => None,
        }
    }

    /// The elements of a `list`.
    pub fn as_list(&self) -> Option<&[String]> {
        match self {
            ConfigValue::List(items) => Some(items),
            _ => None,
        }
    }
}

impl fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigValue::Password(_) => f.write_str("[hidden]"),
            other => f.write_str(&other.to_config_string()),
        }
    }
}

/// Splits list text on commas, trimming each element; the empty text is the
/// empty list.
pub(crate) fn split_list(text: &str) -> Vec<String> {
    let text = text.trim();
    if text.is_empty() {
        return Vec::new();
    }
    text.split(',')
        .map(|item| item.trim().to_string())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::def::ConfigDef;

    fn def(config_type: ConfigType, validator: Validator) -> ConfigDef {
        ConfigDef::new("test.key", config_type, None, "test").with_validator(validator)
    }

    #[test]
    fn parses_each_type_like_kafka() {
        let boolean = def(ConfigType::Boolean, Validator::Any);
        assert_eq!(
            ConfigValue::parse(&boolean, " TRUE ").ok(),
            Some(ConfigValue::Boolean(true))
        );
        let long = def(ConfigType::Long, Validator::Any);
        assert_eq!(
            ConfigValue::parse(&long, "9223372036854775807").ok(),
            Some(ConfigValue::Long(i64::MAX))
        );
        let list = def(ConfigType::List, Validator::Any);
        assert_eq!(
            ConfigValue::parse(&list, " compact , delete ").ok(),
            Some(ConfigValue::List(vec!["compact".into(), "delete".into()]))
        );
        assert_eq!(
            ConfigValue::parse(&list, "").ok(),
            Some(ConfigValue::List(vec![]))
        );
        let double = def(ConfigType::Double, Validator::Any);
        let parsed = ConfigValue::parse(&double, "1").unwrap();
        assert_eq!(parsed.to_config_string(), "1.0");
        let parsed = ConfigValue::parse(&double, "1.7976931348623157E308").unwrap();
        assert_eq!(parsed.to_config_string(), "1.7976931348623157E308");
    }

    #[test]
    fn refuses_wrong_types_naming_the_key() {
        let int = def(ConfigType::Int, Validator::Any);
        let err = ConfigValue::parse(&int, "4294967296").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Invalid value 4294967296 for configuration test.key: Expected value to be a 32-bit integer"
        );
        let boolean = def(ConfigType::Boolean, Validator::Any);
        assert!(ConfigValue::parse(&boolean, "yes").is_err());
    }

    #[test]
    fn validators_refuse_out_of_range() {
        let at_least = def(ConfigType::Long, Validator::at_least(-1));
        let err = ConfigValue::parse(&at_least, "-2").unwrap_err();
        assert!(
            err.to_string().ends_with("Value must be at least -1"),
            "{err}"
        );
        let gzip = def(
            ConfigType::Int,
            Validator::RangeOr {
                min: 1,
                max: 9,
                or: -1,
            },
        );
        assert!(ConfigValue::parse(&gzip, "-1").is_ok());
        assert!(ConfigValue::parse(&gzip, "0").is_err());
        assert!(ConfigValue::parse(&gzip, "10").is_err());
        let one_of = def(
            ConfigType::String,
            Validator::OneOf(&["CreateTime", "LogAppendTime"]),
        );
        assert!(ConfigValue::parse(&one_of, "createtime").is_err());
        let ratio = def(
            ConfigType::Double,
            Validator::DoubleRange { min: 0.0, max: 1.0 },
        );
        assert!(ConfigValue::parse(&ratio, "1.5").is_err());
        assert!(ConfigValue::parse(&ratio, "NaN").is_err());
    }

    #[test]
    fn password_display_hides_the_secret() {
        let value = ConfigValue::Password("s3cret".into());
        assert_eq!(value.to_string(), "[hidden]");
        assert_eq!(value.to_config_string(), "s3cret");
    }
}

//! The shape of one configuration key: its type, default, validator, update
//! mode, broker synonyms and documentation. Both the topic table and the
//! broker table are built from [`ConfigDef`]s.

use std::fmt;

/// The type of a configuration value, as DescribeConfigs reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfigType {
    /// `true` or `false` (case-insensitive on input).
    Boolean,
    /// Free text, often restricted to a set of names.
    String,
    /// A signed 32-bit integer.
    Int,
    /// A signed 16-bit integer.
    Short,
    /// A signed 64-bit integer.
    Long,
    /// A 64-bit floating-point number.
    Double,
    /// A comma-separated list of strings.
    List,
    /// A secret: never returned by DescribeConfigs.
    Password,
    /// A Java class name; accepted for compatibility, never loaded.
    Class,
}

impl ConfigType {
    /// The `config_type` code of DescribeConfigs responses (KIP-569):
    /// BOOLEAN 1, STRING 2, INT 3, SHORT 4, LONG 5, DOUBLE 6, LIST 7,
    /// CLASS 8, PASSWORD 9 (0 is UNKNOWN, which no key of ours has).
    pub const fn code(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Short => 4,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
            ConfigType::Class => 8,
            ConfigType::Password => 9,
        }
    }

    /// The lower-case name Kafka's documentation uses ("long", "list", …).
    pub const fn name(self) -> &'static str {
        match self {
            ConfigType::Boolean => "boolean",
            ConfigType::String => "string",
            ConfigType::Int => "int",
            ConfigType::Short => "short",
            ConfigType::Long => "long",
            ConfigType::Double => "double",
            ConfigType::List => "list",
            ConfigType::Password => "password",
            ConfigType::Class => "class",
        }
    }
}

impl fmt::Display for ConfigType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// When a key may change without a restart (Kafka's "Update Mode").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpdateMode {
    /// Only at startup; DescribeConfigs reports it `read_only`.
    ReadOnly,
    /// Dynamically, per broker only (resource name = the broker's id).
    PerBroker,
    /// Dynamically, per broker or as the cluster-wide default (resource
    /// name "").
    ClusterWide,
    /// A topic config: alterable per topic at any time.
    PerTopic,
}

impl UpdateMode {
    /// Whether IncrementalAlterConfigs may change the key on a running node.
    pub const fn is_dynamic(self) -> bool {
        !matches!(self, UpdateMode::ReadOnly)
    }

    /// Kafka's spelling in the documentation ("read-only", "per-broker",
    /// "cluster-wide"); "per-topic" for topic configs.
    pub const fn name(self) -> &'static str {
        match self {
            UpdateMode::ReadOnly => "read-only",
            UpdateMode::PerBroker => "per-broker",
            UpdateMode::ClusterWide => "cluster-wide",
            UpdateMode::PerTopic => "per-topic",
        }
    }
}

/// How a broker synonym's value converts into the topic config's unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SynonymUnit {
    /// Same unit and type: the value is used as is.
    Same,
    /// The broker key counts minutes; the topic key milliseconds.
    MinutesToMillis,
    /// The broker key counts hours; the topic key milliseconds.
    HoursToMillis,
}

/// A broker key that supplies a topic config's value when the topic has no
/// override (Kafka's "Server Default Property" and its fallbacks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Synonym {
    /// The broker key, e.g. `log.retention.hours`.
    pub name: &'static str,
    /// The conversion into the topic config's unit.
    pub unit: SynonymUnit,
}

impl Synonym {
    /// A synonym in the same unit.
    pub const fn same(name: &'static str) -> Synonym {
        Synonym {
            name,
            unit: SynonymUnit::Same,
        }
    }

    /// A synonym counted in minutes.
    pub const fn minutes(name: &'static str) -> Synonym {
        Synonym {
            name,
            unit: SynonymUnit::MinutesToMillis,
        }
    }

    /// A synonym counted in hours.
    pub const fn hours(name: &'static str) -> Synonym {
        Synonym {
            name,
            unit: SynonymUnit::HoursToMillis,
        }
    }
}

/// The rule a value must satisfy once it parsed as its type.
#[derive(Clone, Copy, Debug)]
pub enum Validator {
    /// Any value of the right type.
    Any,
    /// An integer within bounds (inclusive); `None` leaves a side open.
    Range {
        /// The smallest value allowed.
        min: Option<i64>,
        /// The largest value allowed.
        max: Option<i64>,
    },
    /// An integer within `min..=max`, or exactly `or` (e.g. gzip's -1).
    RangeOr {
        /// The smallest value of the range.
        min: i64,
        /// The largest value of the range.
        max: i64,
        /// The one value outside the range that is also allowed.
        or: i64,
    },
    /// A floating-point number within bounds (inclusive).
    DoubleRange {
        /// The smallest value allowed.
        min: f64,
        /// The largest value allowed.
        max: f64,
    },
    /// A string that is exactly one of these (case-sensitive, like Kafka).
    OneOf(&'static [&'static str]),
    /// A list whose every element is one of these.
    ListOf {
        /// The elements allowed.
        allowed: &'static [&'static str],
        /// Whether the empty list is allowed.
        allow_empty: bool,
    },
    /// A check that a simple rule cannot express (listener lists, throttled
    /// replica lists). `check` receives the trimmed text and returns the
    /// reason it is invalid.
    Custom {
        /// How the valid values read in documentation.
        valid_values: &'static str,
        /// The check itself.
        check: fn(&str) -> Result<(), String>,
    },
}

impl Validator {
    /// An integer of at least `min`.
    pub const fn at_least(min: i64) -> Validator {
        Validator::Range {
            min: Some(min),
            max: None,
        }
    }

    /// An integer within `min..=max`.
    pub const fn between(min: i64, max: i64) -> Validator {
        Validator::Range {
            min: Some(min),
            max: Some(max),
        }
    }

    /// The valid values as Kafka's documentation writes them ("[0,...]",
    /// "[1,...,9] or -1", "[compact, delete]"); empty when anything goes.
    pub fn valid_values(&self) -> String {
        match self {
            Validator::Any => String::new(),
            Validator::Range { min, max } => match (min, max) {
                (Some(min), Some(max)) => format!("[{min},...,{max}]"),
                (Some(min), None) => format!("[{min},...]"),
                (None, Some(max)) => format!("[...,{max}]"),
                (None, None) => String::new(),
            },
            Validator::RangeOr { min, max, or } => format!("[{min},...,{max}] or {or}"),
            Validator::DoubleRange { min, max } => format!("[{min},...,{max}]"),
            Validator::OneOf(names) => format!("[{}]", names.join(", ")),
            Validator::ListOf { allowed, .. } => format!("[{}]", allowed.join(", ")),
            Validator::Custom { valid_values, .. } => (*valid_values).to_string(),
        }
    }
}

/// One configuration key: everything DescribeConfigs, validation and
/// documentation need to know about it.
#[derive(Clone, Copy, Debug)]
pub struct ConfigDef {
    /// The key, spelled exactly as Kafka spells it.
    pub name: &'static str,
    /// The value's type.
    pub config_type: ConfigType,
    /// The default as text (Kafka's default unless Runnel documents a
    /// difference); `None` means null: unset unless configured.
    pub default: Option<&'static str>,
    /// The rule a value must satisfy.
    pub validator: Validator,
    /// When the key may change.
    pub update_mode: UpdateMode,
    /// For topic configs: the broker keys that supply the value when the topic
    /// has no override, highest priority first. Empty for broker keys.
    pub synonyms: &'static [Synonym],
    /// Whether the value is secret (never returned by DescribeConfigs).
    pub sensitive: bool,
    /// Accepted for compatibility with older tools but no longer part of
    /// Kafka 4.x: validated, stored, and left out of DescribeConfigs listings.
    pub deprecated: bool,
    /// What the key does, in Runnel's words.
    pub documentation: &'static str,
}

impl ConfigDef {
    /// A read-only key with no validator, synonyms or flags; refine it with
    /// the `with_*` builders.
    pub const fn new(
        name: &'static str,
        config_type: ConfigType,
        default: Option<&'static str>,
        documentation: &'static str,
    ) -> ConfigDef {
        ConfigDef {
            name,
            config_type,
            default,
            validator: Validator::Any,
            update_mode: UpdateMode::ReadOnly,
            synonyms: &[],
            sensitive: config_type_is_sensitive(config_type),
            deprecated: false,
            documentation,
        }
    }

    /// The same key with a validator.
    pub const fn with_validator(mut self, validator: Validator) -> ConfigDef {
        self.validator = validator;
        self
    }

    /// The same key with an update mode.
    pub const fn with_update_mode(mut self, update_mode: UpdateMode) -> ConfigDef {
        self.update_mode = update_mode;
        self
    }

    /// The same key with broker synonyms.
    pub const fn with_synonyms(mut self, synonyms: &'static [Synonym]) -> ConfigDef {
        self.synonyms = synonyms;
        self
    }

    /// The same key marked deprecated (accepted, not listed).
    pub const fn as_deprecated(mut self) -> ConfigDef {
        self.deprecated = true;
        self
    }

    /// Whether DescribeConfigs reports the key `read_only`.
    pub const fn is_read_only(&self) -> bool {
        matches!(self.update_mode, UpdateMode::ReadOnly)
    }

    /// The highest-priority broker synonym ("Server Default Property").
    pub fn server_default_property(&self) -> Option<&'static str> {
        self.synonyms.first().map(|s| s.name)
    }
}

const fn config_type_is_sensitive(config_type: ConfigType) -> bool {
    matches!(config_type, ConfigType::Password)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn config_type_codes_follow_kip_569() {
        let codes: Vec<i8> = [
            ConfigType::Boolean,
            ConfigType::String,
            ConfigType::Int,
            ConfigType::Short,
            ConfigType::Long,
            ConfigType::Double,
            ConfigType::List,
            ConfigType::Class,
            ConfigType::Password,
        ]
        .iter()
        .map(|t| t.code())
        .collect();
        assert_eq!(codes, vec![1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn valid_values_read_like_kafka_docs() {
        assert_eq!(Validator::at_least(0).valid_values(), "[0,...]");
        assert_eq!(Validator::between(1, 17).valid_values(), "[1,...,17]");
        assert_eq!(
            Validator::RangeOr {
                min: 1,
                max: 9,
                or: -1
            }
            .valid_values(),
            "[1,...,9] or -1"
        );
        assert_eq!(
            Validator::ListOf {
                allowed: &["compact", "delete"],
                allow_empty: true
            }
            .valid_values(),
            "[compact, delete]"
        );
    }

    #[test]
    fn password_keys_are_sensitive_by_construction() {
        let def = ConfigDef::new("ssl.key.password", ConfigType::Password, None, "secret");
        assert!(def.sensitive);
        let def = ConfigDef::new("num.partitions", ConfigType::Int, Some("1"), "count");
        assert!(!def.sensitive);
    }
}

//! Tests of loading, dynamic updates and describing the broker configuration.

use super::*;
use crate::config::def::ConfigType;

fn load(overrides: &[(&str, &str)]) -> Result<BrokerConfig, ConfigError> {
    BrokerConfig::load(ConfigSources {
        overrides: overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..ConfigSources::default()
    })
}

#[test]
fn every_default_parses_and_passes_its_validator() {
    for def in broker_config_defs() {
        if let Some(default) = def.default {
            ConfigValue::parse(def, default).unwrap();
        }
    }
    BrokerConfig::load(ConfigSources::default()).unwrap();
}

#[test]
fn defaults_equal_kafkas_except_where_documented() {
    let config = BrokerConfig::default();
    let kafka = [
        ("num.partitions", "1"),
        ("default.replication.factor", "1"),
        ("auto.create.topics.enable", "true"),
        ("delete.topic.enable", "true"),
        ("log.retention.hours", "168"),
        ("log.retention.bytes", "-1"),
        ("log.segment.bytes", "1073741824"),
        ("log.roll.hours", "168"),
        ("log.retention.check.interval.ms", "300000"),
        ("log.flush.interval.messages", "9223372036854775807"),
        ("log.flush.scheduler.interval.ms", "9223372036854775807"),
        ("log.index.interval.bytes", "4096"),
        ("log.index.size.max.bytes", "10485760"),
        ("log.message.timestamp.type", "CreateTime"),
        ("log.cleanup.policy", "delete"),
        ("compression.type", "producer"),
        ("message.max.bytes", "1048588"),
        ("socket.request.max.bytes", "104857600"),
        ("max.connections", "2147483647"),
        ("max.connections.per.ip", "2147483647"),
        ("queued.max.requests", "500"),
        ("num.io.threads", "8"),
        ("num.network.threads", "3"),
        ("producer.id.expiration.ms", "86400000"),
        ("transactional.id.expiration.ms", "604800000"),
        ("min.insync.replicas", "1"),
        ("offsets.topic.num.partitions", "50"),
        ("offsets.retention.minutes", "10080"),
        ("group.initial.rebalance.delay.ms", "3000"),
        ("connections.max.idle.ms", "600000"),
        ("unclean.leader.election.enable", "false"),
        ("replica.fetch.max.bytes", "1048576"),
        ("fetch.max.bytes", "57671680"),
        ("replica.lag.time.max.ms", "30000"),
        ("log.message.timestamp.after.max.ms", "3600000"),
    ];
    for (name, value) in kafka {
        assert_eq!(config.get(name).as_deref(), Some(value), "{name}");
    }
    for name in [
        "log.retention.ms",
        "log.retention.minutes",
        "log.flush.interval.ms",
        "broker.rack",
        "advertised.listeners",
    ] {
        assert_eq!(config.get(name), None, "{name}");
    }
    // Runnel's documented differences.
    assert_eq!(config.get("node.id").as_deref(), Some("0"));
    assert_eq!(
        config.get("process.roles").as_deref(),
        Some("broker,controller")
    );
    assert_eq!(
        config.get("listeners").as_deref(),
        Some("PLAINTEXT://127.0.0.1:9092")
    );
    assert_eq!(config.get("log.dir").as_deref(), Some("./runnel-data"));
    assert_eq!(
        config.get("offsets.topic.replication.factor").as_deref(),
        Some("3")
    );
    for (name, kafka_default, _) in RUNNEL_DEFAULT_DIFFERENCES {
        let def = broker_config_def(name).unwrap();
        assert_ne!(def.default, *kafka_default, "{name}");
    }
}

#[test]
fn precedence_is_file_then_env_then_overrides() {
    let file = BrokerConfig::from_toml_str(
        "\"num.partitions\" = 2\n\"queued.max.requests\" = 10\n\"message.max.bytes\" = 100",
    )
    .unwrap();
    let config = BrokerConfig::load(ConfigSources {
        file: Some(file),
        env: vec![
            ("RUNNEL_NUM_PARTITIONS".into(), "3".into()),
            ("RUNNEL_QUEUED_MAX_REQUESTS".into(), "20".into()),
            ("RUNNEL_LOG".into(), "debug".into()),
            ("PATH".into(), "/bin".into()),
        ],
        overrides: vec![("num.partitions".into(), "4".into())],
    })
    .unwrap();
    assert_eq!(config.num_partitions(), 4);
    assert_eq!(config.queued_max_requests(), 20);
    assert_eq!(config.message_max_bytes(), 100);
    assert_eq!(
        config.source("num.partitions"),
        Some(ConfigSource::StaticBroker)
    );
    assert_eq!(config.source("num.io.threads"), Some(ConfigSource::Default));
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let err = load(&[("log.retention.msec", "1")]).unwrap_err();
    assert_eq!(
        err,
        ConfigError::Unknown {
            key: "log.retention.msec".into()
        }
    );
    let file = BrokerConfig::from_toml_str("[log]\nretention.msec = 1").unwrap();
    let err = BrokerConfig::load(ConfigSources {
        file: Some(file),
        ..ConfigSources::default()
    })
    .unwrap_err();
    assert_eq!(err.key(), Some("log.retention.msec"));
    let err = BrokerConfig::load(ConfigSources {
        env: vec![("RUNNEL_LOG_RETENTION_MSEC".into(), "1".into())],
        ..ConfigSources::default()
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("RUNNEL_LOG_RETENTION_MSEC"),
        "{err}"
    );
}

#[test]
fn invalid_values_are_refused_by_name() {
    for (key, value) in [
        ("num.partitions", "0"),
        ("num.partitions", "many"),
        ("auto.create.topics.enable", "yes"),
        ("log.segment.bytes", "1000"),
        ("log.message.timestamp.type", "Now"),
        ("listeners", "localhost:9092"),
        ("process.roles", ""),
        ("process.roles", "broker,gateway"),
        ("node.id", "-1"),
    ] {
        let err = load(&[(key, value)]).unwrap_err();
        assert_eq!(err.key(), Some(key), "{key}={value}: {err}");
    }
    let file = BrokerConfig::from_toml_str("\"num.partitions\" = true").unwrap();
    let err = BrokerConfig::load(ConfigSources {
        file: Some(file),
        ..ConfigSources::default()
    })
    .unwrap_err();
    assert_eq!(err.key(), Some("num.partitions"));
}

#[test]
fn retention_ms_beats_minutes_beats_hours() {
    assert_eq!(BrokerConfig::default().log_retention_ms(), 604_800_000);
    let hours = load(&[("log.retention.hours", "1")]).unwrap();
    assert_eq!(hours.log_retention_ms(), 3_600_000);
    let minutes = load(&[("log.retention.hours", "1"), ("log.retention.minutes", "2")]).unwrap();
    assert_eq!(minutes.log_retention_ms(), 120_000);
    let ms = load(&[
        ("log.retention.ms", "5"),
        ("log.retention.hours", "1"),
        ("log.retention.minutes", "2"),
    ])
    .unwrap();
    assert_eq!(ms.log_retention_ms(), 5);
    let unlimited = load(&[("log.retention.ms", "-7")]).unwrap();
    assert_eq!(unlimited.log_retention_ms(), -1);
    let roll = load(&[("log.roll.hours", "2")]).unwrap();
    assert_eq!(roll.log_roll_ms(), 7_200_000);
}

#[test]
fn nested_toml_reaches_dotted_keys() {
    let file = BrokerConfig::from_toml_str(
        "process.roles = [\"broker\"]\n\
         [log]\nretention.ms = 1000\ndirs = \"/a,/b\"\n\
         [log.segment]\nbytes = 2097152\n\
         [auto.create.topics]\nenable = false\n",
    )
    .unwrap();
    let config = BrokerConfig::load(ConfigSources {
        file: Some(file),
        ..ConfigSources::default()
    })
    .unwrap();
    assert_eq!(config.log_retention_ms(), 1000);
    assert_eq!(config.log_segment_bytes(), 2_097_152);
    assert!(!config.auto_create_topics_enable());
    assert_eq!(
        config.log_dirs(),
        vec![std::path::PathBuf::from("/a"), "/b".into()]
    );
    assert_eq!(config.log_dir(), std::path::PathBuf::from("/a"));
    let roles = config.process_roles();
    assert!(roles.broker && !roles.controller);
}

#[test]
fn listeners_parse_and_are_checked() {
    let config = load(&[
        ("listeners", "PLAINTEXT://0.0.0.0:9092,INTERNAL://:9093"),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,INTERNAL:SSL",
        ),
        ("advertised.listeners", "PLAINTEXT://broker1:9092"),
    ])
    .unwrap();
    assert_eq!(config.listeners().len(), 2);
    assert_eq!(config.advertised_listeners()[0].host, "broker1");
    assert_eq!(
        config.listener_security_protocol("internal").as_deref(),
        Some("SSL")
    );
    let defaults = BrokerConfig::default();
    assert_eq!(defaults.advertised_listeners(), defaults.listeners());
    assert_eq!(defaults.listeners()[0].port, 9092);

    let err = load(&[("listeners", "CONTROLLER://:9093")]).unwrap_err();
    assert_eq!(err.key(), Some("listeners"));
    let err = load(&[("advertised.listeners", "OTHER://h:1")]).unwrap_err();
    assert_eq!(err.key(), Some("advertised.listeners"));
    let err = load(&[("advertised.listeners", "PLAINTEXT://0.0.0.0:9092")]).unwrap_err();
    assert_eq!(err.key(), Some("advertised.listeners"));
    let err = load(&[("inter.broker.listener.name", "NOPE")]).unwrap_err();
    assert_eq!(err.key(), Some("inter.broker.listener.name"));
}

#[test]
fn set_dynamic_refuses_read_only_keys() {
    let mut config = BrokerConfig::default();
    assert_eq!(
        config.set_dynamic("num.partitions", Some("3")),
        Err(ConfigError::ReadOnly {
            key: "num.partitions".into()
        })
    );
    assert_eq!(
        config.set_dynamic("nope", Some("3")),
        Err(ConfigError::Unknown { key: "nope".into() })
    );
    assert_eq!(
        config.set_dynamic_cluster_default("listeners", Some("PLAINTEXT://:1")),
        Err(ConfigError::PerBrokerOnly {
            key: "listeners".into()
        })
    );
    assert_eq!(config, BrokerConfig::default());
}

#[test]
fn set_dynamic_updates_and_deletes() {
    let mut config = load(&[("log.retention.ms", "1000")]).unwrap();
    config
        .set_dynamic("log.retention.ms", Some("2000"))
        .unwrap();
    assert_eq!(config.log_retention_ms(), 2000);
    assert_eq!(
        config.source("log.retention.ms"),
        Some(ConfigSource::DynamicBroker)
    );
    assert_eq!(
        config
            .dynamic_broker_configs()
            .get("log.retention.ms")
            .map(String::as_str),
        Some("2000")
    );
    config.set_dynamic("log.retention.ms", None).unwrap();
    assert_eq!(config.log_retention_ms(), 1000);
    assert!(config.set_dynamic("max.connections", Some("-1")).is_err());
    config.set_dynamic("max.connections", Some("10")).unwrap();
    assert_eq!(config.max_connections(), 10);
    // A dynamic change that breaks a cross-key rule changes nothing.
    let before = config.clone();
    assert!(config.set_dynamic("listeners", Some("OTHER://:1")).is_err());
    assert_eq!(config, before);
}

#[test]
fn describe_reports_sources_synonyms_and_secrets() {
    let mut config = load(&[
        ("log.retention.minutes", "10"),
        ("ssl.keystore.password", "hunter2"),
    ])
    .unwrap();
    config.set_dynamic("log.retention.ms", Some("5")).unwrap();
    let described = config.describe();
    let names: Vec<&str> = described.iter().map(|d| d.name.as_str()).collect();
    assert!(!names.contains(&"log.message.timestamp.difference.max.ms"));
    let retention = described
        .iter()
        .find(|d| d.name == "log.retention.ms")
        .unwrap();
    assert_eq!(retention.value.as_deref(), Some("5"));
    assert_eq!(retention.source, ConfigSource::DynamicBroker);
    assert!(!retention.read_only);
    assert_eq!(
        retention.synonyms,
        vec![
            (
                "log.retention.ms".to_string(),
                Some("5".to_string()),
                ConfigSource::DynamicBroker
            ),
            (
                "log.retention.minutes".to_string(),
                Some("10".to_string()),
                ConfigSource::StaticBroker
            ),
            (
                "log.retention.hours".to_string(),
                Some("168".to_string()),
                ConfigSource::Default
            ),
        ]
    );
    let password = config.describe_config("ssl.keystore.password").unwrap();
    assert_eq!(password.value, None);
    assert!(password.sensitive);
    assert_eq!(password.config_type, ConfigType::Password);
    assert_eq!(password.source, ConfigSource::StaticBroker);
    assert_eq!(
        config.get("ssl.keystore.password").as_deref(),
        Some("hunter2")
    );
    let partitions = config.describe_config("num.partitions").unwrap();
    assert!(partitions.read_only);
    assert_eq!(partitions.source, ConfigSource::Default);
}

#[test]
fn cluster_defaults_describe_only_what_is_set() {
    let mut config = BrokerConfig::default();
    assert!(config.describe_dynamic_defaults().is_empty());
    config
        .set_dynamic_cluster_default("message.max.bytes", Some("2000"))
        .unwrap();
    let described = config.describe_dynamic_defaults();
    assert_eq!(described.len(), 1);
    assert_eq!(described[0].value.as_deref(), Some("2000"));
    assert_eq!(described[0].source, ConfigSource::DynamicDefaultBroker);
    assert_eq!(config.message_max_bytes(), 2000);
    assert_eq!(
        config
            .dynamic_default_configs()
            .get("message.max.bytes")
            .map(String::as_str),
        Some("2000")
    );
}

#[test]
fn reserved_environment_variables_are_ignored() {
    let config = BrokerConfig::load(ConfigSources {
        env: vec![
            ("RUNNEL_LOG".into(), "debug".into()),
            ("RUNNEL_BIN".into(), "/usr/bin/runnel".into()),
        ],
        ..ConfigSources::default()
    })
    .unwrap();
    assert_eq!(config, BrokerConfig::default());
}

#[test]
fn broker_id_must_match_node_id() {
    assert!(load(&[("node.id", "3"), ("broker.id", "3")]).is_ok());
    let err = load(&[("node.id", "3"), ("broker.id", "4")]).unwrap_err();
    assert_eq!(err.key(), Some("broker.id"));
}

#[test]
fn topic_synonym_defaults_match_topic_defaults() {
    // A broker at its defaults must hand topics exactly Kafka's topic defaults.
    let config = BrokerConfig::default();
    for topic in TOPIC_CONFIGS {
        for synonym in topic.synonyms {
            let def = broker_config_def(synonym.name).unwrap();
            assert_eq!(def.deprecated, topic.deprecated, "{}", def.name);
            if def.default.is_some() && synonym.unit == crate::config::def::SynonymUnit::Same {
                let broker_value = config.value(synonym.name).unwrap().to_config_string();
                let topic_value = ConfigValue::parse(topic, topic.default.unwrap())
                    .unwrap()
                    .to_config_string();
                assert_eq!(broker_value, topic_value, "{}", synonym.name);
            }
        }
    }
}

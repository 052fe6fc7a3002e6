//! Listener lists: `NAME://host:port`, comma-separated, as in `listeners` and
//! `advertised.listeners`. An empty host means every interface; IPv6 hosts
//! are written in brackets (`PLAINTEXT://[::1]:9092`).

use std::fmt;

/// One listener: a name (which selects the security protocol through
/// `listener.security.protocol.map`) and an address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Listener {
    /// The listener name, upper-cased (Kafka treats names case-insensitively).
    pub name: String,
    /// The host or IP address, without brackets; empty for every interface.
    pub host: String,
    /// The TCP port; 0 asks the operating system for a free one.
    pub port: u16,
}

impl Listener {
    /// The address as `host:port`, with IPv6 hosts in brackets; ready for
    /// binding or for a Metadata response.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.name, self.address())
    }
}

/// Parses a listener list. Names must be distinct; so must ports, except 0.
/// The error is the reason only; the caller names the key.
pub fn parse_listeners(text: &str) -> Result<Vec<Listener>, String> {
    let mut listeners: Vec<Listener> = Vec::new();
    for item in super::value::split_list(text) {
        let listener = parse_listener(&item)?;
        if listeners.iter().any(|l| l.name == listener.name) {
            return Err(format!(
                "Each listener must have a different name; {} appears twice",
                listener.name
            ));
        }
        if listener.port != 0 && listeners.iter().any(|l| l.port == listener.port) {
            return Err(format!(
                "Each listener must have a different port; {} appears twice",
                listener.port
            ));
        }
        listeners.push(listener);
    }
    Ok(listeners)
}

fn parse_listener(item: &str) -> Result<Listener, String> {
    let malformed = || format!("{item} is not of the form NAME://host:port");
    let (name, address) = item.split_once("://").ok_or_else(malformed)?;
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !name_ok {
        return Err(format!(
            "{item} has an invalid listener name (letters, digits, '_' and '-' only)"
        ));
    }
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, port) = rest.split_once("]:").ok_or_else(malformed)?;
        (host, port)
    } else {
        address.rsplit_once(':').ok_or_else(malformed)?
    };
    if host.contains(['/', ' ']) || (!address.starts_with('[') && host.contains(':')) {
        return Err(malformed());
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{item} has an invalid port (0 to 65535)"))?;
    Ok(Listener {
        name: name.to_ascii_uppercase(),
        host: host.to_string(),
        port,
    })
}

/// Checks a listener list for use as a validator.
pub(crate) fn check_listeners(text: &str) -> Result<(), String> {
    parse_listeners(text).map(|_| ())
}

/// Parses `listener.security.protocol.map`: `NAME:PROTOCOL` pairs.
pub fn parse_protocol_map(text: &str) -> Result<Vec<(String, String)>, String> {
    const PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];
    let mut pairs: Vec<(String, String)> = Vec::new();
    for item in super::value::split_list(text) {
        let (name, protocol) = item
            .split_once(':')
            .ok_or_else(|| format!("{item} is not of the form NAME:PROTOCOL"))?;
        let name = name.trim().to_ascii_uppercase();
        let protocol = protocol.trim().to_ascii_uppercase();
        if !PROTOCOLS.contains(&protocol.as_str()) {
            return Err(format!(
                "{protocol} is not a security protocol (one of {})",
                PROTOCOLS.join(", ")
            ));
        }
        if pairs.iter().any(|(n, _)| *n == name) {
            return Err(format!("listener {name} is mapped twice"));
        }
        pairs.push((name, protocol));
    }
    Ok(pairs)
}

/// Checks a protocol map for use as a validator.
pub(crate) fn check_protocol_map(text: &str) -> Result<(), String> {
    parse_protocol_map(text).map(|_| ())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_hosts_and_ports() {
        let listeners =
            parse_listeners("PLAINTEXT://127.0.0.1:9092, internal://:9093,SSL://[::1]:9094")
                .unwrap();
        assert_eq!(
            listeners,
            vec![
                Listener {
                    name: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9092
                },
                Listener {
                    name: "INTERNAL".into(),
                    host: "".into(),
                    port: 9093
                },
                Listener {
                    name: "SSL".into(),
                    host: "::1".into(),
                    port: 9094
                },
            ]
        );
        assert_eq!(listeners[2].address(), "[::1]:9094");
        assert_eq!(listeners[0].to_string(), "PLAINTEXT://127.0.0.1:9092");
    }

    #[test]
    fn refuses_malformed_listeners() {
        for bad in [
            "127.0.0.1:9092",
            "PLAINTEXT://127.0.0.1",
            "PLAINTEXT://127.0.0.1:99999",
            "PLAIN TEXT://h:1",
            "://h:1",
            "PLAINTEXT://::1:9092",
            "A://h:1,A://h:2",
            "A://h:1,B://h:1",
        ] {
            assert!(parse_listeners(bad).is_err(), "{bad}");
        }
        assert!(parse_listeners("A://h:0,B://h:0").is_ok());
    }

    #[test]
    fn parses_protocol_maps() {
        let map = parse_protocol_map("CONTROLLER:PLAINTEXT, internal:sasl_ssl").unwrap();
        assert_eq!(map[1], ("INTERNAL".to_string(), "SASL_SSL".to_string()));
        assert!(parse_protocol_map("A:TLS").is_err());
        assert!(parse_protocol_map("A").is_err());
    }
}

//! Settings shared by the producer, consumer and admin client.

use std::time::Duration;

use crate::error::{Error, Result};

/// How to reach the cluster and how patient to be with it.
///
/// ```
/// use runnel_client::ClientConfig;
/// let config = ClientConfig::new("127.0.0.1:9092").client_id("billing");
/// assert_eq!(config.bootstrap_servers, vec!["127.0.0.1:9092".to_string()]);
/// ```
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `bootstrap.servers`: `host:port` addresses to start from.
    pub bootstrap_servers: Vec<String>,
    /// `client.id`, sent with every request.
    pub client_id: String,
    /// `request.timeout.ms`: how long to wait for any one response.
    pub request_timeout: Duration,
    /// `socket.connection.setup.timeout.ms`.
    pub connect_timeout: Duration,
    /// `metadata.max.age.ms`: metadata older than this is refreshed before use.
    pub metadata_max_age: Duration,
    /// `retry.backoff.ms`: pause between retries of a retriable error.
    pub retry_backoff: Duration,
}

impl ClientConfig {
    /// Settings for the given comma-separated `bootstrap.servers`, Kafka's defaults otherwise.
    pub fn new(bootstrap_servers: &str) -> ClientConfig {
        ClientConfig {
            bootstrap_servers: bootstrap_servers
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            client_id: "runnel-client".to_owned(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            metadata_max_age: Duration::from_secs(300),
            retry_backoff: Duration::from_millis(100),
        }
    }

    /// Sets `client.id`.
    pub fn client_id(mut self, client_id: impl Into<String>) -> ClientConfig {
        self.client_id = client_id.into();
        self
    }

    /// Sets `request.timeout.ms`.
    pub fn request_timeout(mut self, timeout: Duration) -> ClientConfig {
        self.request_timeout = timeout;
        self
    }

    /// Sets the connection setup timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientConfig {
        self.connect_timeout = timeout;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.bootstrap_servers.is_empty() {
            return Err(Error::Config("bootstrap.servers is empty".into()));
        }
        Ok(())
    }
}

//! How admin calls retry: the whole call, or only the items whose answer was a
//! retriable error, until the admin's deadline.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;

use kafka_protocol::error::ResponseError;
use tokio::time::Instant;

use super::Admin;
use crate::error::{Error, Result};

/// One answer per item.
pub(super) type Outcomes<K, V> = Vec<(K, Result<V>)>;

/// Whether an admin call should try again after this error.
///
/// Unlike the producer and consumer, a missing topic is an answer here (describing
/// or deleting a topic that does not exist must not spin until the deadline), and a
/// moved controller or coordinator is always worth another attempt.
pub(super) fn retriable(error: &Error) -> bool {
    match error.code() {
        Some(ResponseError::UnknownTopicOrPartition) => false,
        Some(
            ResponseError::NotController
            | ResponseError::NotCoordinator
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::CoordinatorLoadInProgress,
        ) => true,
        _ => error.is_retriable(),
    }
}

impl Admin {
    /// Runs `call` until it succeeds, fails with a non-retriable error, or the
    /// deadline passes (then the last error is returned).
    pub(super) async fn retrying<T, F, Fut>(&self, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let deadline = Instant::now() + self.timeout;
        loop {
            match call().await {
                Err(e) if retriable(&e) && self.time_for_another(deadline) => {
                    tracing::debug!(error = %e, "admin call retried");
                    self.recover(&e).await;
                }
                other => return other,
            }
        }
    }

    /// Runs `call` over the items still without a final answer until every item has
    /// one. Items answered with a retriable error are tried again (after a metadata
    /// refresh when the error calls for one) until the deadline; a retriable error of
    /// the whole call retries every pending item; any other error of the whole call
    /// is returned as is.
    pub(super) async fn per_item<K, V, F, Fut>(
        &self,
        items: Vec<K>,
        mut call: F,
    ) -> Result<BTreeMap<K, Result<V>>>
    where
        K: Ord + Clone + Debug,
        F: FnMut(Vec<K>) -> Fut,
        Fut: Future<Output = Result<Outcomes<K, V>>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut done = BTreeMap::new();
        let mut pending = items;
        pending.sort();
        pending.dedup();
        while !pending.is_empty() {
            let outcomes = match call(pending.clone()).await {
                Ok(outcomes) => outcomes,
                Err(e) if retriable(&e) && self.time_for_another(deadline) => {
                    tracing::debug!(error = %e, "admin call retried");
                    self.recover(&e).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut retry = Vec::new();
            let mut cause = None;
            for (key, outcome) in outcomes {
                if pending.binary_search(&key).is_err() || done.contains_key(&key) {
                    continue;
                }
                match outcome {
                    Err(e) if retriable(&e) && Instant::now() < deadline => {
                        retry.push(key);
                        cause = Some(e);
                    }
                    outcome => {
                        done.insert(key, outcome);
                    }
                }
            }
            retry.sort();
            retry.dedup();
            for key in &pending {
                if !done.contains_key(key) && retry.binary_search(key).is_err() {
                    done.insert(
                        key.clone(),
                        Err(Error::Protocol(format!(
                            "the broker did not answer for {key:?}"
                        ))),
                    );
                }
            }
            if let Some(e) = cause {
                if !self.time_for_another(deadline) {
                    for key in retry.drain(..) {
                        done.insert(key, Err(e.clone()));
                    }
                } else {
                    tracing::debug!(error = %e, items = retry.len(), "admin items retried");
                    self.recover(&e).await;
                }
            }
            pending = retry;
        }
        Ok(done)
    }

    /// Whether a retry, after `retry.backoff.ms`, still starts before the deadline.
    fn time_for_another(&self, deadline: Instant) -> bool {
        Instant::now() + self.cluster.config().retry_backoff < deadline
    }

    /// Waits `retry.backoff.ms`, then refreshes what `error` says is stale.
    async fn recover(&self, error: &Error) {
        tokio::time::sleep(self.cluster.config().retry_backoff).await;
        if error.needs_metadata_refresh() || matches!(error, Error::NoBrokerReachable { .. }) {
            if let Err(e) = self.cluster.refresh_metadata(&[]).await {
                tracing::debug!(error = %e, "metadata refresh before an admin retry failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    use crate::{ClientConfig, Cluster};

    /// An admin over a Runnel broker started in-process (retries refresh metadata
    /// from it); the broker lives as long as the returned guard.
    async fn admin(timeout: Duration) -> (Admin, runnel_broker::RunningServer, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let config =
            runnel_model::config::BrokerConfig::load(runnel_model::config::ConfigSources {
                file: None,
                env: Vec::new(),
                overrides: vec![
                    ("log.dirs".into(), dir.path().display().to_string()),
                    ("listeners".into(), "PLAINTEXT://127.0.0.1:0".into()),
                ],
            })
            .unwrap();
        let server = runnel_broker::Server::start(config).await.unwrap();
        let mut config = ClientConfig::new(&server.local_addr().to_string());
        config.retry_backoff = Duration::from_millis(10);
        let cluster = Cluster::connect(config).await.unwrap();
        (Admin::new(cluster).with_timeout(timeout), server, dir)
    }

    #[tokio::test]
    async fn only_items_answered_with_a_retriable_error_are_sent_again() {
        let (admin, server, _dir) = admin(Duration::from_secs(5)).await;
        let sent: Mutex<Vec<Vec<&str>>> = Mutex::default();
        let results = admin
            .per_item(vec!["a", "b", "c"], |pending: Vec<&str>| {
                let first = sent.lock().unwrap().is_empty();
                sent.lock().unwrap().push(pending.clone());
                async move {
                    Ok(pending
                        .into_iter()
                        .map(|k| {
                            let result = match (k, first) {
                                ("b", true) => Err(Error::broker(16, None, "moved")),
                                ("c", _) => Err(Error::broker(36, None, "exists")),
                                _ => Ok(k.len()),
                            };
                            (k, result)
                        })
                        .collect::<Outcomes<&str, usize>>())
                }
            })
            .await
            .unwrap();
        assert_eq!(*sent.lock().unwrap(), vec![vec!["a", "b", "c"], vec!["b"]]);
        assert_eq!(results["a"].as_ref().unwrap(), &1);
        assert_eq!(results["b"].as_ref().unwrap(), &1);
        assert_eq!(
            results["c"].as_ref().unwrap_err().code(),
            Some(ResponseError::TopicAlreadyExists)
        );
        server.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn an_item_still_failing_at_the_deadline_keeps_its_last_error() {
        let (admin, server, _dir) = admin(Duration::from_millis(200)).await;
        let calls = AtomicUsize::new(0);
        let results = admin
            .per_item(vec![1], |pending: Vec<i32>| {
                calls.fetch_add(1, Ordering::Relaxed);
                async move {
                    Ok(pending
                        .into_iter()
                        .map(|k| (k, Err(Error::broker(5, None, "no leader"))))
                        .collect::<Outcomes<i32, ()>>())
                }
            })
            .await
            .unwrap();
        assert!(calls.load(Ordering::Relaxed) > 1);
        assert_eq!(
            results[&1].as_ref().unwrap_err().code(),
            Some(ResponseError::LeaderNotAvailable)
        );
        server.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_lost_connection_is_retried_and_a_final_error_is_not() {
        let (admin, server, _dir) = admin(Duration::from_secs(5)).await;
        let calls = AtomicUsize::new(0);
        let answer = admin
            .retrying(|| async {
                match calls.fetch_add(1, Ordering::Relaxed) {
                    0 => Err(Error::Connection {
                        addr: "x:1".into(),
                        reason: "reset".into(),
                    }),
                    n => Ok(n),
                }
            })
            .await
            .unwrap();
        assert_eq!(answer, 1);

        calls.store(0, Ordering::Relaxed);
        let err = admin
            .retrying(|| async {
                calls.fetch_add(1, Ordering::Relaxed);
                Err::<(), _>(Error::broker(37, None, "shrink"))
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ResponseError::InvalidPartitions));
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        server.shutdown().await.unwrap();
    }

    #[test]
    fn a_missing_topic_is_final_and_a_moved_controller_is_not() {
        assert!(!retriable(&Error::broker(3, None, "x")));
        assert!(retriable(&Error::broker(41, None, "x")));
        assert!(retriable(&Error::broker(16, None, "x")));
        assert!(!retriable(&Error::broker(36, None, "x")));
        assert!(retriable(&Error::Connection {
            addr: "a:1".into(),
            reason: "reset".into()
        }));
    }
}

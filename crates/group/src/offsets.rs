//! Committed offsets of the groups of one shard, and their expiry.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::records::OffsetValue;
use crate::Millis;

/// The committed offsets of every group in a shard.
#[derive(Debug, Default)]
pub struct OffsetStore {
    groups: HashMap<String, BTreeMap<(String, i32), OffsetValue>>,
}

/// How a group's offsets age, given the group's state (KIP-211).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// The group has no members; offsets expire `retention` after the later
    /// of their commit and the time the group became empty.
    Empty { since: Millis },
    /// The group has members consuming these topics; offsets of other
    /// topics expire `retention` after their commit.
    Subscribed(BTreeSet<String>),
    /// The group has members but their topics are unknown (a non-consumer
    /// protocol): nothing expires.
    Never,
}

impl OffsetStore {
    /// The committed offset of one partition.
    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<&OffsetValue> {
        self.groups.get(group)?.get(&(topic.to_string(), partition))
    }

    /// Every committed offset of a group, by topic and partition.
    pub fn group(&self, group: &str) -> Option<&BTreeMap<(String, i32), OffsetValue>> {
        self.groups.get(group)
    }

    /// True if the group has any committed offset.
    pub fn has_offsets(&self, group: &str) -> bool {
        self.groups.get(group).is_some_and(|g| !g.is_empty())
    }

    /// Every group with offsets.
    pub fn groups(&self) -> impl Iterator<Item = &String> {
        self.groups.keys()
    }

    /// Stores a committed offset (on replay of a commit record).
    pub fn put(&mut self, group: &str, topic: &str, partition: i32, value: OffsetValue) {
        self.groups
            .entry(group.to_string())
            .or_default()
            .insert((topic.to_string(), partition), value);
    }

    /// Removes a committed offset (on replay of a tombstone).
    pub fn remove(&mut self, group: &str, topic: &str, partition: i32) {
        if let Some(offsets) = self.groups.get_mut(group) {
            offsets.remove(&(topic.to_string(), partition));
            if offsets.is_empty() {
                self.groups.remove(group);
            }
        }
    }

    /// The offsets of `group` that have expired at `now`.
    pub fn expired(
        &self,
        group: &str,
        expiry: &Expiry,
        now: Millis,
        retention_ms: i64,
    ) -> Vec<(String, i32)> {
        let Some(offsets) = self.groups.get(group) else {
            return Vec::new();
        };
        offsets
            .iter()
            .filter(|((topic, _), value)| {
                if value.expire_timestamp >= 0 {
                    return now >= value.expire_timestamp;
                }
                let base = match expiry {
                    Expiry::Empty { since } => value.commit_timestamp.max(*since),
                    Expiry::Subscribed(topics) if !topics.contains(topic) => value.commit_timestamp,
                    Expiry::Subscribed(_) | Expiry::Never => return false,
                };
                now.saturating_sub(base) >= retention_ms
            })
            .map(|(tp, _)| tp.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(offset: i64, at: Millis) -> OffsetValue {
        OffsetValue {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: at,
            expire_timestamp: -1,
        }
    }

    #[test]
    fn empty_groups_expire_from_the_later_of_commit_and_emptiness() {
        let mut store = OffsetStore::default();
        store.put("g", "a", 0, value(5, 1_000));
        store.put("g", "b", 0, value(6, 5_000));
        let expiry = Expiry::Empty { since: 3_000 };
        assert_eq!(store.expired("g", &expiry, 12_999, 10_000), []);
        assert_eq!(
            store.expired("g", &expiry, 13_000, 10_000),
            [("a".into(), 0)]
        );
        assert_eq!(store.expired("g", &expiry, 15_000, 10_000).len(), 2);
    }

    #[test]
    fn active_groups_keep_subscribed_topics() {
        let mut store = OffsetStore::default();
        store.put("g", "a", 0, value(5, 0));
        store.put("g", "b", 1, value(6, 0));
        let expiry = Expiry::Subscribed(["a".to_string()].into());
        assert_eq!(store.expired("g", &expiry, 100_000, 10), [("b".into(), 1)]);
        assert_eq!(store.expired("g", &Expiry::Never, 100_000, 10), []);
    }

    #[test]
    fn explicit_expire_time_wins_and_remove_drops_empty_groups() {
        let mut store = OffsetStore::default();
        let mut v = value(1, 0);
        v.expire_timestamp = 50;
        store.put("g", "a", 0, v);
        assert_eq!(
            store.expired("g", &Expiry::Never, 50, i64::MAX),
            [("a".into(), 0)]
        );
        store.remove("g", "a", 0);
        assert!(!store.has_offsets("g"));
        assert_eq!(store.groups().count(), 0);
    }
}

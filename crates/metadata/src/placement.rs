//! Where the replicas of new partitions go: the idea of Kafka's
//! `StripedReplicaPlacer`, made deterministic.
//!
//! The usable brokers are put in a rack-alternating order: the first broker
//! of each rack, then the second of each rack, and so on (racks and brokers
//! sorted). Partition `p` of a topic gets its first replica — the preferred
//! leader — at position `(start + p) mod n` of that list, so consecutive
//! partitions start on different brokers and leadership spreads evenly. The
//! followers are taken from the positions after it, beginning at a shift
//! that changes every `n` partitions (so two brokers are not always paired),
//! first preferring brokers on racks the partition does not use yet, then
//! any broker it does not use yet.
//!
//! `start` is given per topic (the controller derives it from the topic id),
//! so the leaders of many small topics do not all land on the same broker.
//!
//! Example, 3 brokers without racks, start 0, RF 2:
//! p0 → [0, 1], p1 → [1, 2], p2 → [2, 0], p3 → [0, 2], p4 → [1, 0], p5 → [2, 1].

use std::collections::BTreeMap;

use runnel_model::BrokerId;

/// A broker that may receive replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsableBroker {
    pub id: BrokerId,
    pub rack: Option<String>,
}

/// Why no placement exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("replication factor must be at least 1, not {0}")]
    ReplicationFactorTooSmall(i32),
    #[error("replication factor {replication_factor} is larger than the {brokers} usable brokers")]
    NotEnoughBrokers {
        replication_factor: i32,
        brokers: usize,
    },
}

/// Places replicas on one fixed set of usable brokers.
#[derive(Debug, Clone)]
pub struct Placer {
    /// Brokers in rack-alternating order.
    order: Vec<UsableBroker>,
}

impl Placer {
    /// A placer over `brokers` (in any order; duplicates are ignored).
    pub fn new(brokers: impl IntoIterator<Item = UsableBroker>) -> Placer {
        let mut by_rack: BTreeMap<Option<String>, Vec<BrokerId>> = BTreeMap::new();
        for broker in brokers {
            let ids = by_rack.entry(broker.rack).or_default();
            if !ids.contains(&broker.id) {
                ids.push(broker.id);
            }
        }
        for ids in by_rack.values_mut() {
            ids.sort();
        }
        let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
        let mut order = Vec::new();
        for i in 0..longest {
            for (rack, ids) in &by_rack {
                if let Some(&id) = ids.get(i) {
                    order.push(UsableBroker {
                        id,
                        rack: rack.clone(),
                    });
                }
            }
        }
        Placer { order }
    }

    /// How many brokers the placer may use.
    pub fn broker_count(&self) -> usize {
        self.order.len()
    }

    /// The replicas of partitions `first..first + count` of a topic whose
    /// placement starts at `start`; each list's first broker is the
    /// preferred leader, and no list repeats a broker.
    pub fn place(
        &self,
        start: u64,
        first: u32,
        count: u32,
        replication_factor: i32,
    ) -> Result<Vec<Vec<BrokerId>>, PlacementError> {
        if replication_factor < 1 {
            return Err(PlacementError::ReplicationFactorTooSmall(
                replication_factor,
            ));
        }
        let n = self.order.len();
        let rf = usize::try_from(replication_factor).unwrap_or(usize::MAX);
        if rf > n {
            return Err(PlacementError::NotEnoughBrokers {
                replication_factor,
                brokers: n,
            });
        }
        Ok((first..first.saturating_add(count))
            .map(|p| self.place_one(start, u64::from(p), rf))
            .collect())
    }

    fn place_one(&self, start: u64, partition: u64, rf: usize) -> Vec<BrokerId> {
        let n = self.order.len() as u64;
        debug_assert!(rf as u64 <= n && n > 0);
        let leader = ((start % n) + partition % n) % n;
        let mut chosen = vec![leader as usize];
        if n > 1 {
            let shift = (start / n + partition / n) % (n - 1);
            let followers: Vec<usize> = (0..n - 1)
                .map(|j| ((leader + 1 + (shift + j) % (n - 1)) % n) as usize)
                .collect();
            // First pass: only brokers on racks this partition lacks.
            for &candidate in &followers {
                if chosen.len() == rf {
                    break;
                }
                let rack = &self.order[candidate].rack;
                if !chosen.iter().any(|&c| &self.order[c].rack == rack) {
                    chosen.push(candidate);
                }
            }
            for &candidate in &followers {
                if chosen.len() == rf {
                    break;
                }
                if !chosen.contains(&candidate) {
                    chosen.push(candidate);
                }
            }
        }
        debug_assert_eq!(chosen.len(), rf);
        chosen.into_iter().map(|i| self.order[i].id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(racks: &[Option<&str>]) -> Vec<UsableBroker> {
        racks
            .iter()
            .enumerate()
            .map(|(i, rack)| UsableBroker {
                id: BrokerId(i as i32),
                rack: rack.map(str::to_string),
            })
            .collect()
    }

    fn ids(lists: &[&[i32]]) -> Vec<Vec<BrokerId>> {
        lists
            .iter()
            .map(|l| l.iter().copied().map(BrokerId).collect())
            .collect()
    }

    #[test]
    fn placement_matches_the_documented_example() {
        let placer = Placer::new(brokers(&[None, None, None]));
        let placed = placer.place(0, 0, 6, 2).expect("places");
        assert_eq!(
            placed,
            ids(&[&[0, 1], &[1, 2], &[2, 0], &[0, 2], &[1, 0], &[2, 1]])
        );
    }

    #[test]
    fn rack_alternating_order_interleaves_racks() {
        // Brokers 0, 1 on rack a, 2, 3 on rack b.
        let placer = Placer::new(brokers(&[Some("a"), Some("a"), Some("b"), Some("b")]));
        let order: Vec<i32> = placer.order.iter().map(|b| b.id.0).collect();
        assert_eq!(order, vec![0, 2, 1, 3]);
    }

    #[test]
    fn refuses_impossible_replication_factors() {
        let placer = Placer::new(brokers(&[None, None]));
        assert_eq!(
            placer.place(0, 0, 1, 3),
            Err(PlacementError::NotEnoughBrokers {
                replication_factor: 3,
                brokers: 2
            })
        );
        assert_eq!(
            placer.place(0, 0, 1, 0),
            Err(PlacementError::ReplicationFactorTooSmall(0))
        );
        assert!(Placer::new(vec![]).place(0, 0, 1, 1).is_err());
    }
}

//! Choosing a partition: the Java client's murmur2 hash for keyed records, sticky
//! partitioning (KIP-480) for the rest.

use std::collections::HashMap;

use rand::Rng;

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), seed `0x9747b28c`.
///
/// ```
/// use runnel_client::producer::partitioner::murmur2;
/// assert_eq!(murmur2(b"foobar"), -790332482);
/// ```
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Java's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows).
pub fn to_positive(number: i32) -> i32 {
    number & 0x7fff_ffff
}

/// The partition the Java client's default partitioner gives a keyed record:
/// `toPositive(murmur2(key)) % partitions`.
///
/// ```
/// use runnel_client::producer::partitioner::partition_for_key;
/// assert!(partition_for_key(b"customer-7", 6) < 6);
/// ```
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    debug_assert!(partitions > 0);
    to_positive(murmur2(key)) % partitions.max(1)
}

/// KIP-480 sticky partitioning: unkeyed records of a topic go to one partition
/// until its batch is full or sent, then to another one chosen at random.
#[derive(Debug, Default)]
pub(crate) struct StickyPartitions {
    /// Per topic: the sticky partition and whether a batch was started on it.
    by_topic: HashMap<String, (i32, bool)>,
}

impl StickyPartitions {
    /// The sticky partition of `topic` and whether a batch was started on it,
    /// if one was chosen (and is below `partitions`).
    pub(crate) fn known(&self, topic: &str, partitions: i32) -> Option<(i32, bool)> {
        self.by_topic
            .get(topic)
            .filter(|(p, _)| *p < partitions)
            .copied()
    }

    /// The sticky partition of `topic` and whether a batch was started on it,
    /// choosing one among `available` (partitions with a leader) or all
    /// `partitions` if none has one.
    pub(crate) fn current(
        &mut self,
        topic: &str,
        partitions: i32,
        available: &[i32],
    ) -> (i32, bool) {
        if let Some(p) = self.by_topic.get(topic).filter(|(p, _)| *p < partitions) {
            return *p;
        }
        let p = choose(partitions, available, None);
        self.by_topic.insert(topic.to_owned(), (p, false));
        (p, false)
    }

    /// A batch was started on the sticky partition of `topic`.
    pub(crate) fn mark_used(&mut self, topic: &str) {
        if let Some((_, used)) = self.by_topic.get_mut(topic) {
            *used = true;
        }
    }

    /// The batch of `previous` is full or sent: moves to another partition.
    pub(crate) fn next(
        &mut self,
        topic: &str,
        previous: i32,
        partitions: i32,
        available: &[i32],
    ) -> i32 {
        let p = choose(partitions, available, Some(previous));
        self.by_topic.insert(topic.to_owned(), (p, false));
        p
    }
}

fn choose(partitions: i32, available: &[i32], avoid: Option<i32>) -> i32 {
    let mut rng = rand::rng();
    let candidates: Vec<i32> = if available.is_empty() {
        (0..partitions.max(1)).collect()
    } else {
        available.to_vec()
    };
    let others: Vec<i32> = candidates
        .iter()
        .copied()
        .filter(|p| Some(*p) != avoid)
        .collect();
    let pool = if others.is_empty() {
        &candidates
    } else {
        &others
    };
    pool[rng.random_range(0..pool.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_the_java_client() {
        let cases: [(&str, i32); 6] = [
            ("21", -973932308),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            ("abc", 479470107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input.as_bytes()), expected, "{input}");
        }
        // Other clients' vectors taken from the Java implementation.
        assert_eq!(murmur2(b"1"), -1993445489);
        assert_eq!(murmur2(b"12345"), -1188365604);
    }

    #[test]
    fn keyed_partition_is_positive_modulo() {
        // murmur2("21") is negative: toPositive, not abs.
        assert_eq!(
            partition_for_key(b"21", 7),
            (-973932308i32 & 0x7fff_ffff) % 7
        );
        for n in 1..20 {
            assert!((0..n).contains(&partition_for_key(b"foobar", n)));
        }
    }

    #[test]
    fn sticky_partition_stays_until_moved_and_moves_elsewhere() {
        let mut sticky = StickyPartitions::default();
        let (first, used) = sticky.current("t", 4, &[0, 1, 2, 3]);
        assert!(!used);
        sticky.mark_used("t");
        assert_eq!(sticky.current("t", 4, &[0, 1, 2, 3]), (first, true));
        for _ in 0..20 {
            let (previous, _) = sticky.current("t", 4, &[0, 1, 2, 3]);
            let next = sticky.next("t", previous, 4, &[0, 1, 2, 3]);
            assert_ne!(next, previous);
            assert_eq!(sticky.current("t", 4, &[0, 1, 2, 3]), (next, false));
        }
        // Only partitions with a leader are chosen.
        let mut sticky = StickyPartitions::default();
        assert_eq!(sticky.current("u", 4, &[2]), (2, false));
        assert_eq!(sticky.next("u", 2, 4, &[2]), 2);
    }
}

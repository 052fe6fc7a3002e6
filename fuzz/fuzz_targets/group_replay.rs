//! `__consumer_offsets` as the group coordinator replays it at start: any
//! sequence of keys and values (a damaged or foreign log) must rebuild a
//! shard without panicking, and the rebuilt groups must then serve the
//! usual calls.
//!
//! Input framing: repeated `[u16 key length][key][i32 value length, -1 for
//! a tombstone][value]`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runnel_group::consumer::TopicMetadata;
use runnel_group::shard::ShardConfig;
use runnel_group::Shard;

struct OneTopic;

impl TopicMetadata for OneTopic {
    fn topic_by_name(&self, name: &str) -> Option<(uuid::Uuid, i32)> {
        (name == "t").then_some((uuid::Uuid::from_u128(7), 3))
    }
    fn topic_by_id(&self, id: uuid::Uuid) -> Option<(String, i32)> {
        (id == uuid::Uuid::from_u128(7)).then(|| ("t".to_string(), 3))
    }
    fn topic_names(&self) -> Vec<String> {
        vec!["t".to_string()]
    }
}

fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if data.len() < n {
        return None;
    }
    let (head, tail) = data.split_at(n);
    *data = tail;
    Some(head)
}

fuzz_target!(|input: &[u8]| {
    let mut data = input;
    let mut shard = Shard::new(0, ShardConfig::default());
    let now = 1_700_000_000_000;
    while let Some(len) = take(&mut data, 2) {
        let key_len = u16::from_be_bytes([len[0], len[1]]) as usize;
        let Some(key) = take(&mut data, key_len) else { break };
        let Some(len) = take(&mut data, 4) else { break };
        let value_len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        let value = if value_len < 0 {
            None
        } else {
            match take(&mut data, value_len as usize) {
                Some(v) => Some(v),
                None => break,
            }
        };
        let _ = shard.replay(key, value, now);
    }
    // The rebuilt state answers what clients and timers ask of it.
    for listing in shard.list_groups() {
        let _ = shard.describe_group(&listing.group_id);
        let _ = shard.consumer_describe(&listing.group_id, &OneTopic, 1);
        let _ = shard.fetch_offsets(&listing.group_id, None, None);
        let _ = shard.heartbeat(now + 1, &listing.group_id, "m", None, 1);
    }
    let _ = shard.tick(now + 3_600_000, &OneTopic);
    let _ = shard.expire_offsets(now + 30 * 86_400_000);
    let _ = shard.unload();
});

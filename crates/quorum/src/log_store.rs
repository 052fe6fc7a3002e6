//! The durable raft log of one node: the metadata log's entries, the vote
//! and the purge point, in the node's `metadata/` directory.
//!
//! - `log`: append-only frames ([`crate::durable::put_frame`]), one per
//!   entry, each the entry as JSON. An append is fsynced before raft is told
//!   it is durable. A truncate cuts the file at the first removed entry and
//!   fsyncs. A torn tail (a crash during an append that was never
//!   acknowledged) is cut off at open.
//! - `state.json`: the vote, the last purged log id and the last known
//!   committed log id, replaced atomically.
//!
//! Every live entry is also kept in memory: the metadata log is small and
//! bounded by snapshots. Purged entries stay in the file until they make up
//! most of it; then the file is rewritten without them.
//!
//! All file work runs on the blocking pool, never on the async runtime.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::durable::{self, frames, put_frame, write_atomically};
use crate::{Entry, NodeId, TypeConfig};

/// Purged bytes at the front of the file beyond which it is rewritten.
const REWRITE_AFTER_BYTES: u64 = 4 << 20;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct State {
    vote: Option<Vote<NodeId>>,
    last_purged: Option<LogId<NodeId>>,
    committed: Option<LogId<NodeId>>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    file: File,
    /// Where the good data of `log` ends.
    file_len: u64,
    state: State,
    entries: BTreeMap<u64, Entry>,
    /// The position in `log` of each entry's frame.
    positions: BTreeMap<u64, u64>,
}

/// The raft log storage; clones share one log.
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn io_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl LogStore {
    /// Opens (creating if needed) the log in `dir`. A log that cannot be
    /// read — a frame with a good CRC that is not an entry, entries out of
    /// order — is an error, not something to guess around.
    pub fn open(dir: &Path) -> io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let state: State = match durable::read_if_exists(&dir.join("state.json"))? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| io_error(format!("{}: {e}", dir.join("state.json").display())))?,
            None => State::default(),
        };
        let path = dir.join("log");
        let bytes = durable::read_if_exists(&path)?.unwrap_or_default();
        let (found, good_len) = frames(&bytes);
        let mut entries = BTreeMap::new();
        let mut positions = BTreeMap::new();
        let purged = state.last_purged.map(|id| id.index);
        let mut previous: Option<u64> = None;
        for (pos, payload) in found {
            let entry: Entry = serde_json::from_slice(payload)
                .map_err(|e| io_error(format!("{} at byte {pos}: {e}", path.display())))?;
            let index = entry.log_id.index;
            if let Some(last) = previous.replace(index) {
                if index != last + 1 {
                    return Err(io_error(format!(
                        "{} at byte {pos}: entry {index} follows entry {last}",
                        path.display()
                    )));
                }
            }
            if purged.is_some_and(|p| index <= p) {
                continue;
            }
            positions.insert(index, pos);
            entries.insert(index, entry);
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)?;
        if good_len < bytes.len() as u64 {
            tracing::warn!(
                path = %path.display(),
                good = good_len,
                len = bytes.len(),
                "cutting a torn tail off the metadata log"
            );
            file.set_len(good_len)?;
            file.sync_all()?;
        }
        durable::sync_dir(&path)?;
        Ok(LogStore {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_path_buf(),
                file,
                file_len: good_len,
                state,
                entries,
                positions,
            })),
        })
    }

    /// Runs `f` on the blocking pool with the log locked.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Inner) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&mut inner.lock()))
            .await
            .map_err(io_error)?
    }
}

impl Inner {
    fn save_state(&self) -> io::Result<()> {
        let bytes = serde_json::to_vec(&self.state).map_err(io_error)?;
        write_atomically(&self.dir.join("state.json"), &bytes)
    }

    fn append(&mut self, entries: Vec<Entry>) -> io::Result<()> {
        let mut buf = Vec::new();
        let mut placed = Vec::with_capacity(entries.len());
        for entry in entries {
            let pos = self.file_len + buf.len() as u64;
            let payload = serde_json::to_vec(&entry).map_err(io_error)?;
            put_frame(&mut buf, &payload);
            placed.push((pos, entry));
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.file_len += buf.len() as u64;
        for (pos, entry) in placed {
            self.positions.insert(entry.log_id.index, pos);
            self.entries.insert(entry.log_id.index, entry);
        }
        Ok(())
    }

    fn truncate(&mut self, from: u64) -> io::Result<()> {
        let Some(&pos) = self.positions.get(&from) else {
            return Ok(());
        };
        self.file.set_len(pos)?;
        self.file.sync_all()?;
        self.file_len = pos;
        self.entries.split_off(&from);
        self.positions.split_off(&from);
        Ok(())
    }

    fn purge(&mut self, upto: LogId<NodeId>) -> io::Result<()> {
        self.state.last_purged = Some(upto);
        self.save_state()?;
        self.entries = self.entries.split_off(&(upto.index + 1));
        self.positions = self.positions.split_off(&(upto.index + 1));
        let dead = self
            .positions
            .values()
            .next()
            .copied()
            .unwrap_or(self.file_len);
        if dead > REWRITE_AFTER_BYTES && dead > self.file_len / 2 {
            self.rewrite()?;
        }
        Ok(())
    }

    /// Writes the live entries to a new file that replaces the log.
    fn rewrite(&mut self) -> io::Result<()> {
        let path = self.dir.join("log");
        let mut buf = Vec::new();
        let mut positions = BTreeMap::new();
        for (index, entry) in &self.entries {
            positions.insert(*index, buf.len() as u64);
            put_frame(&mut buf, &serde_json::to_vec(entry).map_err(io_error)?);
        }
        write_atomically(&path, &buf)?;
        self.file = OpenOptions::new().read(true).append(true).open(&path)?;
        self.file_len = buf.len() as u64;
        self.positions = positions;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        let inner = self.inner.lock();
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.inner.lock();
        let last_purged_log_id = inner.state.last_purged;
        let last_log_id = inner
            .entries
            .last_key_value()
            .map(|(_, e)| e.log_id)
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let vote = *vote;
        self.blocking(move |inner| {
            inner.state.vote = Some(vote);
            inner.save_state()
        })
        .await
        .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().state.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        self.blocking(move |inner| {
            inner.state.committed = committed;
            inner.save_state()
        })
        .await
        .map_err(|e| StorageIOError::write(AnyError::new(&e)).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().state.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let result = self.blocking(move |inner| inner.append(entries)).await;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let error = StorageIOError::write_logs(AnyError::new(&e));
                callback.log_io_completed(Err(e));
                Err(error.into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.blocking(move |inner| inner.truncate(log_id.index))
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.blocking(move |inner| inner.purge(log_id))
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    fn indexes(store: &LogStore) -> Vec<(u64, u64)> {
        store
            .inner
            .lock()
            .entries
            .values()
            .map(|e| (e.log_id.leader_id.term, e.log_id.index))
            .collect()
    }

    #[test]
    fn appends_truncates_and_purges_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LogStore::open(dir.path()).expect("open");
        {
            let mut inner = store.inner.lock();
            inner
                .append((1..=5).map(|i| entry(1, i)).collect())
                .expect("append");
            // A new leader overwrites the tail from 4.
            inner.truncate(4).expect("truncate");
            inner.append(vec![entry(2, 4)]).expect("append");
            inner
                .purge(LogId::new(CommittedLeaderId::new(1, 1), 2))
                .expect("purge");
        }
        assert_eq!(indexes(&store), vec![(1, 3), (2, 4)]);
        drop(store);
        let reopened = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(indexes(&reopened), vec![(1, 3), (2, 4)]);
        assert_eq!(
            reopened.inner.lock().state.last_purged.map(|id| id.index),
            Some(2)
        );
    }

    #[test]
    fn a_torn_append_is_cut_off_and_a_corrupt_entry_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LogStore::open(dir.path()).expect("open");
        store
            .inner
            .lock()
            .append(vec![entry(1, 1), entry(1, 2)])
            .expect("append");
        drop(store);
        let path = dir.path().join("log");
        let good = std::fs::read(&path).expect("read");
        // Half of a third frame: a crash during an unacknowledged append.
        let mut torn = good.clone();
        let mut frame = Vec::new();
        put_frame(&mut frame, &serde_json::to_vec(&entry(1, 3)).expect("json"));
        torn.extend_from_slice(&frame[..frame.len() / 2]);
        std::fs::write(&path, &torn).expect("write");
        let store = LogStore::open(dir.path()).expect("a torn tail is not an error");
        assert_eq!(indexes(&store), vec![(1, 1), (1, 2)]);
        assert_eq!(
            std::fs::read(&path).expect("read"),
            good,
            "the tail was cut"
        );
        drop(store);

        // A frame whose CRC is good but which is not an entry.
        let mut bad = good.clone();
        put_frame(&mut bad, b"{\"not\": \"an entry\"}");
        std::fs::write(&path, &bad).expect("write");
        let error = LogStore::open(dir.path()).expect_err("a corrupt entry is refused");
        assert!(error.to_string().contains("log at byte"), "{error}");
    }

    proptest::proptest! {
        /// A log file of any content opens or is refused; it never panics.
        #[test]
        fn any_log_file_opens_or_is_refused(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..1024), valid_prefix in 0usize..3) {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut file = Vec::new();
            for i in 0..valid_prefix {
                put_frame(&mut file, &serde_json::to_vec(&entry(1, i as u64 + 1)).expect("json"));
            }
            file.extend_from_slice(&bytes);
            std::fs::write(dir.path().join("log"), &file).expect("write");
            if let Ok(store) = LogStore::open(dir.path()) {
                proptest::prop_assert!(store.inner.lock().entries.len() >= valid_prefix);
            }
        }
    }
}

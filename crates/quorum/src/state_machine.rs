//! The state machine of the metadata quorum: committed batches of metadata
//! records replayed into the [`MetadataImage`], published to readers with
//! an atomic swap after every apply.
//!
//! A snapshot is the image written back as records
//! ([`MetadataImage::to_records`]), with raft's snapshot metadata. It is
//! kept in `snapshot.json` beside the log; at start the image is rebuilt
//! from it and raft replays the committed entries that follow.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use parking_lot::Mutex;
use runnel_metadata::{MetadataImage, MetadataRecord};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::durable::{read_if_exists, write_atomically};
use crate::{Applied, Entry, NodeId, TypeConfig};

/// The image readers see, with the log index it reflects.
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub image: Arc<MetadataImage>,
    /// The index of the last applied entry (0 before any).
    pub applied: u64,
}

/// `snapshot.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    records: Vec<MetadataRecord>,
}

impl StoredSnapshot {
    fn data(&self) -> io::Result<Vec<u8>> {
        serde_json::to_vec(&self.records).map_err(io::Error::other)
    }
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    image: Arc<MetadataImage>,
    snapshot: Option<StoredSnapshot>,
    /// Snapshots built by this node, to name them apart.
    built: u64,
}

/// The state machine; clones share one (the snapshot builder is a clone).
#[derive(Debug, Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<Inner>>,
    publish: Arc<watch::Sender<Published>>,
}

impl StateMachine {
    /// Opens the state machine of `dir`, starting from its snapshot.
    pub fn open(dir: &Path) -> io::Result<StateMachine> {
        let path = dir.join("snapshot.json");
        let snapshot: Option<StoredSnapshot> = match read_if_exists(&path)? {
            Some(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::other(format!("{} is not a snapshot: {e}", path.display()))
            })?),
            None => None,
        };
        let (image, last_applied, membership) = match &snapshot {
            Some(s) => (
                MetadataImage::replay(&s.records).map_err(|e| {
                    io::Error::other(format!("{} does not replay: {e}", path.display()))
                })?,
                s.meta.last_log_id,
                s.meta.last_membership.clone(),
            ),
            None => (MetadataImage::default(), None, StoredMembership::default()),
        };
        let image = Arc::new(image);
        let publish = watch::Sender::new(Published {
            image: image.clone(),
            applied: last_applied.map_or(0, |id| id.index),
        });
        Ok(StateMachine {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_path_buf(),
                last_applied,
                membership,
                image,
                snapshot,
                built: 0,
            })),
            publish: Arc::new(publish),
        })
    }

    /// A receiver of every image this state machine publishes.
    pub fn subscribe(&self) -> watch::Receiver<Published> {
        self.publish.subscribe()
    }

    fn publish(&self, inner: &Inner) {
        self.publish.send_replace(Published {
            image: inner.image.clone(),
            applied: inner.last_applied.map_or(0, |id| id.index),
        });
    }

    fn save(dir: &Path, snapshot: &StoredSnapshot) -> io::Result<()> {
        let bytes = serde_json::to_vec(snapshot).map_err(io::Error::other)?;
        write_atomically(&dir.join("snapshot.json"), &bytes)
    }
}

fn snapshot_error(
    meta: Option<&SnapshotMeta<NodeId, BasicNode>>,
    e: &io::Error,
) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(meta.map(|m| m.signature()), AnyError::new(e)).into()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (stored, dir) = {
            let mut inner = self.inner.lock();
            inner.built += 1;
            let last = inner.last_applied;
            let meta = SnapshotMeta {
                last_log_id: last,
                last_membership: inner.membership.clone(),
                snapshot_id: format!(
                    "{}-{}-{}",
                    last.map_or(0, |id| id.leader_id.term),
                    last.map_or(0, |id| id.index),
                    inner.built
                ),
            };
            let stored = StoredSnapshot {
                meta,
                records: inner.image.to_records(),
            };
            (stored, inner.dir.clone())
        };
        let data = stored.data().map_err(|e| snapshot_error(None, &e))?;
        let to_save = stored.clone();
        tokio::task::spawn_blocking(move || StateMachine::save(&dir, &to_save))
            .await
            .map_err(io::Error::other)
            .and_then(|r| r)
            .map_err(|e| snapshot_error(Some(&stored.meta), &e))?;
        let meta = stored.meta.clone();
        self.inner.lock().snapshot = Some(stored);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        let inner = self.inner.lock();
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut inner = self.inner.lock();
        let mut responses = Vec::new();
        for entry in entries {
            inner.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(batch) => {
                    let (image, errors) = inner.image.apply_batch(&batch.records);
                    for (position, error) in errors {
                        tracing::error!(
                            index = entry.log_id.index,
                            position,
                            %error,
                            "skipping a metadata record that does not apply"
                        );
                    }
                    inner.image = Arc::new(image);
                }
                EntryPayload::Membership(membership) => {
                    inner.membership = StoredMembership::new(Some(entry.log_id), membership);
                }
            }
            responses.push(Applied {
                index: entry.log_id.index,
            });
        }
        self.publish(&inner);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> StateMachine {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let bad = |why: String| snapshot_error(Some(meta), &io::Error::other(why));
        let records: Vec<MetadataRecord> = serde_json::from_slice(snapshot.get_ref())
            .map_err(|e| bad(format!("a received snapshot is not records: {e}")))?;
        let image = MetadataImage::replay(&records)
            .map_err(|e| bad(format!("a received snapshot does not replay: {e}")))?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            records,
        };
        let dir = self.inner.lock().dir.clone();
        let to_save = stored.clone();
        tokio::task::spawn_blocking(move || StateMachine::save(&dir, &to_save))
            .await
            .map_err(io::Error::other)
            .and_then(|r| r)
            .map_err(|e| snapshot_error(Some(meta), &e))?;
        let mut inner = self.inner.lock();
        inner.image = Arc::new(image);
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.snapshot = Some(stored);
        self.publish(&inner);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let inner = self.inner.lock();
        let Some(stored) = &inner.snapshot else {
            return Ok(None);
        };
        let data = stored
            .data()
            .map_err(|e| snapshot_error(Some(&stored.meta), &e))?;
        Ok(Some(Snapshot {
            meta: stored.meta.clone(),
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

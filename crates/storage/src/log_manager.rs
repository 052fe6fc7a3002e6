//! The logs of one data directory: the directory lock, the clean-shutdown
//! marker, partition directories, the background thread that flushes and
//! applies retention, and the cleaner thread that compacts logs whose
//! `cleanup.policy` contains `compact`.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};
use runnel_model::{PartitionId, Timestamp, TopicName, TopicPartition};

use crate::cleaner::{compact_shared, CleanerOptions, DEFAULT_DEDUPE_BUFFER_BYTES};
use crate::{CompactionReport, Log, LogConfig, LogError, StdIo, StorageIo};

/// Marker written at the end of a clean shutdown; its presence at start
/// lets logs skip recovery.
pub const CLEAN_SHUTDOWN_MARKER: &str = ".runnel-clean-shutdown";
/// Lock file held (flock) while a process owns the data directory.
pub const LOCK_FILE: &str = ".lock";
/// Suffix of partition directories being deleted.
const DELETE_SUFFIX: &str = "-delete";
/// Kafka's `producer.id.expiration.ms` default: one day.
pub const DEFAULT_PRODUCER_ID_EXPIRATION_MS: i64 = 86_400_000;

/// Settings of the background threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackgroundOptions {
    /// How often to check logs against `flush.messages` / `flush.ms`
    /// (`log.flush.scheduler.interval.ms`).
    pub flush_check_interval_ms: u64,
    /// How often to apply retention (`log.retention.check.interval.ms`).
    pub retention_check_interval_ms: u64,
    /// Whether to run the cleaner thread (`log.cleaner.enable`).
    pub cleaner_enable: bool,
    /// How long the cleaner sleeps between two looks for logs to clean
    /// (`log.cleaner.backoff.ms`).
    pub cleaner_backoff_ms: u64,
    /// Memory for the cleaner's key -> offset map
    /// (`log.cleaner.dedupe.buffer.size`); a dirty part with more keys is
    /// cleaned over several passes.
    pub cleaner_dedupe_buffer_bytes: u64,
}

impl Default for BackgroundOptions {
    fn default() -> Self {
        BackgroundOptions {
            flush_check_interval_ms: 1000,
            retention_check_interval_ms: 300_000,
            cleaner_enable: true,
            cleaner_backoff_ms: 15_000,
            cleaner_dedupe_buffer_bytes: DEFAULT_DEDUPE_BUFFER_BYTES,
        }
    }
}

#[derive(Debug, Default)]
struct Stop {
    requested: Mutex<bool>,
    wake: Condvar,
}

#[derive(Debug)]
struct Inner {
    data_dir: PathBuf,
    io: Arc<dyn StorageIo>,
    _lock: File,
    clean_shutdown: bool,
    logs: RwLock<HashMap<TopicPartition, Arc<Mutex<Log>>>>,
    producer_id_expiration_ms: AtomicI64,
    stop: Arc<Stop>,
    background: Mutex<Option<JoinHandle<()>>>,
    cleaner: Mutex<Option<JoinHandle<()>>>,
}

/// Owns every partition log of a data directory.
#[derive(Debug)]
pub struct LogManager {
    inner: Arc<Inner>,
}

/// Handle on the background threads (flusher and retention; cleaner).
/// Dropping it leaves them running; [`LogManager::shutdown`] or
/// [`BackgroundHandle::stop`] ends them.
#[derive(Debug)]
pub struct BackgroundHandle {
    inner: Arc<Inner>,
}

impl BackgroundHandle {
    /// Stops the threads and waits for them.
    pub fn stop(self) {
        self.inner.stop_background();
    }
}

impl Inner {
    fn stop_background(&self) {
        *self.stop.requested.lock() = true;
        self.stop.wake.notify_all();
        let handles = [self.background.lock().take(), self.cleaner.lock().take()];
        for handle in handles.into_iter().flatten() {
            if handle.join().is_err() {
                tracing::error!("log background thread panicked");
            }
        }
    }

    /// Compacts every log the cleaner finds due (see
    /// [`crate::CleanableStatus::is_due`]), those past
    /// `max.compaction.lag.ms` or a delete horizon first, then the
    /// dirtiest. A failing log is logged and left for the next round.
    fn clean_due_logs(
        &self,
        now: Timestamp,
        options: &CleanerOptions,
        stop: &dyn Fn() -> bool,
    ) -> Vec<(TopicPartition, CompactionReport)> {
        let mut due = Vec::new();
        for (tp, log) in self.all_logs() {
            let guard = log.lock();
            let Some(status) = guard.cleanable_status(now) else {
                continue;
            };
            if guard.uncleanable_reason().is_none()
                && status.is_due(guard.config().min_cleanable_dirty_ratio)
            {
                let urgent = status.max_lag_exceeded || status.delete_horizon_passed;
                drop(guard);
                due.push((urgent, status.dirty_ratio(), tp, log));
            }
        }
        due.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)));
        let mut cleaned = Vec::new();
        for (_, _, tp, log) in due {
            if stop() {
                break;
            }
            match compact_shared(&log, now, options, stop) {
                Ok(Some(report)) => {
                    tracing::info!(partition = %tp, segments = report.segments_cleaned, bytes_before = report.bytes_before, bytes_after = report.bytes_after, removed = report.records_removed, "log compacted");
                    cleaned.push((tp, report));
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(partition = %tp, %err, "log cleaning failed"),
            }
        }
        cleaned
    }

    fn all_logs(&self) -> Vec<(TopicPartition, Arc<Mutex<Log>>)> {
        self.logs
            .read()
            .iter()
            .map(|(tp, log)| (tp.clone(), Arc::clone(log)))
            .collect()
    }

    fn flush_due_logs(&self, now: Timestamp) {
        for (tp, log) in self.all_logs() {
            let task = {
                let log = log.lock();
                let unflushed = log.unflushed_messages();
                let config = log.config();
                let due = unflushed >= config.flush_messages
                    || (unflushed > 0
                        && now.0.saturating_sub(log.last_flush_time().0) >= config.flush_ms);
                if due {
                    log.flush_task()
                } else {
                    None
                }
            };
            if let Some(task) = task {
                match task.run() {
                    Ok(()) => log.lock().mark_flushed(&task),
                    Err(err) => log
                        .lock()
                        .mark_offline(format!("fsync of {tp} failed: {err}")),
                }
            }
        }
    }

    fn apply_retention(&self, now: Timestamp) {
        let expiration_ms = self.producer_id_expiration_ms.load(Ordering::Relaxed);
        for (tp, log) in self.all_logs() {
            let mut log = log.lock();
            if log.is_offline() {
                continue;
            }
            match log.apply_retention(now) {
                Ok(0) => {}
                Ok(deleted) => {
                    tracing::info!(partition = %tp, deleted, "retention deleted segments")
                }
                Err(err) => tracing::warn!(partition = %tp, %err, "retention failed"),
            }
            log.expire_producers(now, expiration_ms);
        }
    }
}

fn background_loop(inner: Weak<Inner>, stop: Arc<Stop>, options: BackgroundOptions) {
    let flush_every = options.flush_check_interval_ms.max(1) as i64;
    let retention_every = options.retention_check_interval_ms.max(1) as i64;
    let start = Timestamp::now().0;
    let mut next_flush = start + flush_every;
    let mut next_retention = start + retention_every;
    loop {
        let now = Timestamp::now().0;
        let wait_ms = (next_flush.min(next_retention) - now).max(0) as u64;
        {
            let mut requested = stop.requested.lock();
            if !*requested && wait_ms > 0 {
                stop.wake
                    .wait_for(&mut requested, Duration::from_millis(wait_ms));
            }
            if *requested {
                return;
            }
        }
        let Some(inner) = inner.upgrade() else { return };
        let now = Timestamp::now();
        if now.0 >= next_flush {
            inner.flush_due_logs(now);
            next_flush = now.0 + flush_every;
        }
        if now.0 >= next_retention {
            inner.apply_retention(now);
            next_retention = now.0 + retention_every;
        }
    }
}

fn cleaner_loop(inner: Weak<Inner>, stop: Arc<Stop>, options: BackgroundOptions) {
    let backoff = Duration::from_millis(options.cleaner_backoff_ms.max(1));
    let cleaner = CleanerOptions {
        dedupe_buffer_bytes: options.cleaner_dedupe_buffer_bytes,
    };
    let stopping = || *stop.requested.lock();
    loop {
        {
            let mut requested = stop.requested.lock();
            if !*requested {
                stop.wake.wait_for(&mut requested, backoff);
            }
            if *requested {
                return;
            }
        }
        let Some(inner) = inner.upgrade() else { return };
        inner.clean_due_logs(Timestamp::now(), &cleaner, &stopping);
    }
}

fn parse_partition_dir(name: &str) -> Option<TopicPartition> {
    let (topic, partition) = name.rsplit_once('-')?;
    if partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let partition: i32 = partition.parse().ok()?;
    let topic = TopicName::new(topic).ok()?;
    Some(TopicPartition::new(topic, PartitionId(partition)))
}

static DELETE_COUNTER: AtomicU64 = AtomicU64::new(0);

impl LogManager {
    /// Creates `data_dir` if needed, takes its lock (failing with
    /// [`LogError::DirectoryLocked`] if another process holds it), and reads
    /// and removes the clean-shutdown marker.
    pub fn open(data_dir: &Path) -> Result<LogManager, LogError> {
        LogManager::open_with_io(data_dir, StdIo::shared())
    }

    /// [`LogManager::open`] with every log's file changes going through
    /// `io` (a [`crate::fault_injection::FaultyIo`] in tests).
    pub fn open_with_io(data_dir: &Path, io: Arc<dyn StorageIo>) -> Result<LogManager, LogError> {
        std::fs::create_dir_all(data_dir)?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(data_dir.join(LOCK_FILE))?;
        #[allow(clippy::incompatible_msrv)]
        // File::try_lock is stable since 1.89, the toolchain in use.
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LogError::DirectoryLocked(data_dir.to_path_buf()))
            }
            Err(std::fs::TryLockError::Error(err)) => return Err(LogError::Io(err)),
        }
        let marker = data_dir.join(CLEAN_SHUTDOWN_MARKER);
        let clean_shutdown = marker.exists();
        if clean_shutdown {
            std::fs::remove_file(&marker)?;
            File::open(data_dir)?.sync_all()?;
        }
        Ok(LogManager {
            inner: Arc::new(Inner {
                data_dir: data_dir.to_path_buf(),
                io,
                _lock: lock,
                clean_shutdown,
                logs: RwLock::new(HashMap::new()),
                producer_id_expiration_ms: AtomicI64::new(DEFAULT_PRODUCER_ID_EXPIRATION_MS),
                stop: Arc::new(Stop::default()),
                background: Mutex::new(None),
                cleaner: Mutex::new(None),
            }),
        })
    }

    /// Whether the previous process left the clean-shutdown marker.
    pub fn was_clean_shutdown(&self) -> bool {
        self.inner.clean_shutdown
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// Sets `producer.id.expiration.ms`, applied at retention checks.
    pub fn set_producer_id_expiration_ms(&self, ms: i64) {
        self.inner
            .producer_id_expiration_ms
            .store(ms, Ordering::Relaxed);
    }

    /// Partition directories on disk (`<topic>-<partition>`). Leftover
    /// `*-delete` directories are removed; other entries are skipped.
    pub fn existing_partitions(&self) -> Vec<TopicPartition> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.inner.data_dir) else {
            return out;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !entry.file_type().is_ok_and(|t| t.is_dir()) || name.starts_with('.') {
                continue;
            }
            if name.ends_with(DELETE_SUFFIX) {
                if let Err(err) = std::fs::remove_dir_all(entry.path()) {
                    tracing::warn!(dir = %name, %err, "could not remove deleted partition");
                }
                continue;
            }
            if let Some(tp) = parse_partition_dir(&name) {
                out.push(tp);
            }
        }
        out.sort();
        out
    }

    /// The log of `tp`, opening it (with recovery if the last shutdown was
    /// not clean) or creating it with `config`.
    pub fn get_or_create(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
    ) -> Result<Arc<Mutex<Log>>, LogError> {
        let mut logs = self.inner.logs.write();
        if let Some(log) = logs.get(tp) {
            return Ok(Arc::clone(log));
        }
        let dir = self.inner.data_dir.join(tp.dir_name());
        // Log::open itself warns about anything it repaired.
        let (log, report) = Log::open_with_io(
            &dir,
            config,
            self.inner.clean_shutdown,
            Arc::clone(&self.inner.io),
        )?;
        tracing::debug!(partition = %tp, %report, "log opened");
        let log = Arc::new(Mutex::new(log));
        logs.insert(tp.clone(), Arc::clone(&log));
        Ok(log)
    }

    /// The open log of `tp`, if any.
    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Mutex<Log>>> {
        self.inner.logs.read().get(tp).cloned()
    }

    /// Deletes the partition: takes its log offline, renames the directory
    /// to `<topic>-<partition>.<unique>-delete`, then removes it.
    pub fn delete(&self, tp: &TopicPartition) -> Result<(), LogError> {
        let removed = self.inner.logs.write().remove(tp);
        if let Some(log) = removed {
            log.lock().retire("partition deleted");
        }
        let dir = self.inner.data_dir.join(tp.dir_name());
        if !dir.exists() {
            return Ok(());
        }
        let unique = format!(
            "{}{}",
            Timestamp::now().0,
            DELETE_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let doomed = self
            .inner
            .data_dir
            .join(format!("{}.{unique}{DELETE_SUFFIX}", tp.dir_name()));
        std::fs::rename(&dir, &doomed)?;
        File::open(&self.inner.data_dir)?.sync_all()?;
        std::fs::remove_dir_all(&doomed)?;
        Ok(())
    }

    /// Compacts the log of `tp` now, whatever its dirty ratio (see
    /// [`Log::compact`]), without holding its lock during the map and the
    /// rewrite. `None` if there is no such log or nothing to clean.
    pub fn compact(
        &self,
        tp: &TopicPartition,
        now: Timestamp,
    ) -> Result<Option<CompactionReport>, LogError> {
        let Some(log) = self.get(tp) else {
            return Ok(None);
        };
        compact_shared(&log, now, &CleanerOptions::default(), &|| false)
    }

    /// One round of the cleaner thread at time `now`: compacts every log
    /// whose dirty ratio reached `min.cleanable.dirty.ratio`, or with a
    /// dirty record past `max.compaction.lag.ms` or a tombstone past its
    /// delete horizon. Returns what it compacted.
    pub fn clean_due_logs(&self, now: Timestamp) -> Vec<(TopicPartition, CompactionReport)> {
        self.inner
            .clean_due_logs(now, &CleanerOptions::default(), &|| false)
    }

    /// Starts the background threads (plain threads, never the async
    /// runtime): one flushes logs by `flush.messages` / `flush.ms` and
    /// applies retention and producer-id expiry; the cleaner (unless
    /// `cleaner_enable` is off) compacts due logs every
    /// `cleaner_backoff_ms`.
    pub fn start_background(&self, options: BackgroundOptions) -> BackgroundHandle {
        let mut cleaner_slot = self.inner.cleaner.lock();
        let mut slot = self.inner.background.lock();
        if slot.is_none() && cleaner_slot.is_none() && options.cleaner_enable {
            let weak = Arc::downgrade(&self.inner);
            let stop = Arc::clone(&self.inner.stop);
            *self.inner.stop.requested.lock() = false;
            let spawned = std::thread::Builder::new()
                .name("runnel-log-cleaner".into())
                .spawn(move || cleaner_loop(weak, stop, options));
            match spawned {
                Ok(handle) => *cleaner_slot = Some(handle),
                Err(err) => tracing::error!(%err, "could not start the log cleaner thread"),
            }
        }
        if slot.is_none() {
            *self.inner.stop.requested.lock() = false;
            let weak = Arc::downgrade(&self.inner);
            let stop = Arc::clone(&self.inner.stop);
            let spawned = std::thread::Builder::new()
                .name("runnel-log-background".into())
                .spawn(move || background_loop(weak, stop, options));
            match spawned {
                Ok(handle) => *slot = Some(handle),
                Err(err) => tracing::error!(%err, "could not start the log background thread"),
            }
        }
        BackgroundHandle {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Stops the background thread, closes every log (flush, producer
    /// snapshots) and, if all closed cleanly, writes the clean-shutdown
    /// marker and fsyncs the directory.
    pub fn shutdown(&self) -> Result<(), LogError> {
        self.inner.stop_background();
        let logs: Vec<_> = self.inner.logs.write().drain().collect();
        let mut first_error = None;
        for (tp, log) in logs {
            if let Err(err) = log.lock().close_in_place() {
                tracing::error!(partition = %tp, %err, "log did not close cleanly");
                first_error.get_or_insert(err);
            }
        }
        if let Some(err) = first_error {
            return Err(err);
        }
        let marker = self.inner.data_dir.join(CLEAN_SHUTDOWN_MARKER);
        let file = File::create(&marker)?;
        file.sync_all()?;
        File::open(&self.inner.data_dir)?.sync_all()?;
        Ok(())
    }
}

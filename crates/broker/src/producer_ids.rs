//! Producer id allocation for InitProducerId.
//!
//! Ids are handed out from blocks whose upper bound is made durable before
//! the first id of the block is used, so a restart never reuses an id: at
//! worst it skips the rest of a block.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

const BLOCK_SIZE: i64 = 1000;
const FILE_NAME: &str = "producer-id-block";

#[derive(Debug)]
pub(crate) struct ProducerIdAllocator {
    path: PathBuf,
    state: Mutex<Block>,
}

#[derive(Debug)]
struct Block {
    next: i64,
    end: i64,
}

impl ProducerIdAllocator {
    /// Opens the allocator whose durable state lives in `data_dir`.
    pub fn open(data_dir: &Path) -> std::io::Result<ProducerIdAllocator> {
        let path = data_dir.join(FILE_NAME);
        let next = match fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<i64>().map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(ProducerIdAllocator {
            path,
            state: Mutex::new(Block { next, end: next }),
        })
    }

    /// Returns a producer id never returned before by this data directory.
    pub fn allocate(&self) -> std::io::Result<i64> {
        let mut block = self.state.lock();
        if block.next >= block.end {
            let end = block.end + BLOCK_SIZE;
            write_durably(&self.path, end)?;
            block.end = end;
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }
}

fn write_durably(path: &Path, value: i64) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp)?;
    writeln!(file, "{value}")?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_ids_are_unique_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let first = ProducerIdAllocator::open(dir.path()).unwrap();
        let a = first.allocate().unwrap();
        let b = first.allocate().unwrap();
        assert_ne!(a, b);
        drop(first);
        let second = ProducerIdAllocator::open(dir.path()).unwrap();
        let c = second.allocate().unwrap();
        assert!(c > b, "{c} must not reuse an id up to {b}");
    }
}

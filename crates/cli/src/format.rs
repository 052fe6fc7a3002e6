//! `runnel format`: gives a data directory its identity before the first start,
//! a `meta.properties` naming the node and the cluster it belongs to.
//!
//! Every node of a cluster is formatted with the same cluster id; a node refuses
//! to join peers of another cluster, so two clusters never mix their metadata.
//! Formatting never overwrites: a directory already formatted for the same node
//! and cluster is left as it is, anything else is an error.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The file a data directory's identity is kept in.
pub const META_PROPERTIES: &str = "meta.properties";

/// Length of a cluster id: 16 bytes in unpadded base64.
const CLUSTER_ID_LEN: usize = 22;

/// The URL-safe base64 alphabet (RFC 4648 §5).
const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `runnel format` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node's data directory (created if missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// The node's `node.id`.
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
    node_id: i32,
    /// The cluster id: 22 characters of URL-safe base64 (A-Z a-z 0-9 - _).
    /// A new one is generated and printed when missing.
    #[arg(long)]
    cluster_id: Option<String>,
}

/// What [`format_dir`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Formatted {
    /// `meta.properties` was written.
    Written,
    /// `meta.properties` already named this node and cluster; nothing changed.
    AlreadyFormatted,
}

/// Runs `runnel format`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (cluster_id, generated) = match args.cluster_id {
        Some(id) => (id, false),
        None => (generate_cluster_id(), true),
    };
    let path = args.data_dir.join(META_PROPERTIES);
    let formatted = format_dir(&args.data_dir, args.node_id, &cluster_id)?;
    if generated {
        println!("Generated cluster id {cluster_id}");
    }
    match formatted {
        Formatted::Written => println!(
            "Formatted {} (node.id {}, cluster.id {cluster_id})",
            path.display(),
            args.node_id
        ),
        Formatted::AlreadyFormatted => println!(
            "{} is already formatted (node.id {}, cluster.id {cluster_id})",
            path.display(),
            args.node_id
        ),
    }
    Ok(())
}

/// A new cluster id: a random (version 4) UUID as unpadded URL-safe base64.
pub fn generate_cluster_id() -> String {
    base64_url(uuid::Uuid::new_v4().as_bytes())
}

/// Checks that `id` has the form of a cluster id.
pub fn validate_cluster_id(id: &str) -> anyhow::Result<()> {
    let well_formed = id.len() == CLUSTER_ID_LEN && id.bytes().all(|b| BASE64_URL.contains(&b));
    anyhow::ensure!(
        well_formed,
        "invalid cluster id {id:?}: expected {CLUSTER_ID_LEN} characters of A-Z a-z 0-9 - _ \
         (16 bytes in URL-safe base64, as `runnel format` generates)"
    );
    Ok(())
}

/// Writes `dir/meta.properties` for `node_id` of `cluster_id`, creating `dir`.
/// An existing file with the same ids is left alone; one with other ids (or one
/// that cannot be read as meta.properties) is an error, never overwritten.
pub fn format_dir(dir: &Path, node_id: i32, cluster_id: &str) -> anyhow::Result<Formatted> {
    validate_cluster_id(cluster_id)?;
    anyhow::ensure!(node_id >= 0, "invalid node id {node_id}: must be 0 or more");
    let path = dir.join(META_PROPERTIES);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let existing = MetaProperties::parse(&text)
                .with_context(|| format!("{} is not a valid meta.properties", path.display()))?;
            if existing.node_id == node_id && existing.cluster_id == cluster_id {
                Ok(Formatted::AlreadyFormatted)
            } else {
                anyhow::bail!(
                    "{} is already formatted with node.id {} and cluster.id {}; refusing to \
                     overwrite it with node.id {node_id} and cluster.id {cluster_id}",
                    path.display(),
                    existing.node_id,
                    existing.cluster_id
                )
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let text = MetaProperties {
                node_id,
                cluster_id: cluster_id.to_owned(),
            }
            .to_text();
            write_atomically(&path, &text)?;
            Ok(Formatted::Written)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Replaces `path` with `contents` so that a crash leaves either the old file or
/// the whole new one: a temp file beside it, fsynced, renamed over it, and the
/// directory fsynced so the rename itself is durable.
pub fn write_atomically(path: &Path, contents: &str) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let mut tmp_name = file_name.to_owned();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let write = || -> io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

/// The identity in a `meta.properties` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    /// `node.id`.
    pub node_id: i32,
    /// `cluster.id`.
    pub cluster_id: String,
}

impl MetaProperties {
    /// Reads `key=value` lines (blank lines and `#` comments skipped); `node.id`
    /// and `cluster.id` must be present.
    pub fn parse(text: &str) -> anyhow::Result<MetaProperties> {
        let mut node_id = None;
        let mut cluster_id = None;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .with_context(|| format!("line {line:?} is not key=value"))?;
            match key.trim() {
                "node.id" => {
                    let id = value
                        .trim()
                        .parse::<i32>()
                        .with_context(|| format!("node.id {:?} is not a number", value.trim()))?;
                    node_id = Some(id);
                }
                "cluster.id" => cluster_id = Some(value.trim().to_owned()),
                _ => {}
            }
        }
        Ok(MetaProperties {
            node_id: node_id.context("node.id is missing")?,
            cluster_id: cluster_id.context("cluster.id is missing")?,
        })
    }

    /// The file's text, one `key=value` a line.
    pub fn to_text(&self) -> String {
        format!(
            "version=1\nnode.id={}\ncluster.id={}\n",
            self.node_id, self.cluster_id
        )
    }
}

/// Unpadded URL-safe base64 of `bytes`.
fn base64_url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let mut group = [0u8; 3];
        group[..chunk.len()].copy_from_slice(chunk);
        let bits = (u32::from(group[0]) << 16) | (u32::from(group[1]) << 8) | u32::from(group[2]);
        // n input bytes carry 8n bits: n + 1 six-bit characters.
        for i in 0..=chunk.len() {
            let sextet = (bits >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(BASE64_URL[sextet as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_url_matches_rfc_4648_vectors_without_padding() {
        assert_eq!(base64_url(b""), "");
        assert_eq!(base64_url(b"f"), "Zg");
        assert_eq!(base64_url(b"fo"), "Zm8");
        assert_eq!(base64_url(b"foo"), "Zm9v");
        assert_eq!(base64_url(b"foobar"), "Zm9vYmFy");
        // The URL-safe alphabet: 0xfb 0xff is "+/8" in the standard one.
        assert_eq!(base64_url(&[0xfb, 0xff]), "-_8");
        assert_eq!(base64_url(&[0u8; 16]), "AAAAAAAAAAAAAAAAAAAAAA");
    }

    #[test]
    fn generated_cluster_ids_are_22_url_safe_characters_and_differ() {
        let a = generate_cluster_id();
        let b = generate_cluster_id();
        assert_eq!(a.len(), 22, "{a}");
        validate_cluster_id(&a).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn malformed_cluster_ids_are_refused() {
        for bad in [
            "",
            "short",
            "AAAAAAAAAAAAAAAAAAAAA+",
            "AAAAAAAAAAAAAAAAAAAAAAA",
            "a\nb",
        ] {
            assert!(validate_cluster_id(bad).is_err(), "{bad:?}");
        }
        validate_cluster_id("MkU3OEVBNTcwNTJENDM2Qg").unwrap();
    }

    #[test]
    fn format_writes_exactly_version_node_and_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a/b");
        let id = generate_cluster_id();
        assert_eq!(format_dir(&data, 3, &id).unwrap(), Formatted::Written);
        let text = fs::read_to_string(data.join(META_PROPERTIES)).unwrap();
        assert_eq!(text, format!("version=1\nnode.id=3\ncluster.id={id}\n"));
        assert!(!data.join("meta.properties.tmp").exists());
    }

    #[test]
    fn format_again_with_the_same_ids_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let id = generate_cluster_id();
        format_dir(dir.path(), 1, &id).unwrap();
        assert_eq!(
            format_dir(dir.path(), 1, &id).unwrap(),
            Formatted::AlreadyFormatted
        );
    }

    #[test]
    fn format_refuses_to_overwrite_another_identity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(META_PROPERTIES);
        let first = generate_cluster_id();
        let other = generate_cluster_id();
        format_dir(dir.path(), 1, &first).unwrap();
        let before = fs::read_to_string(&path).unwrap();
        for (node, cluster) in [(1, &other), (2, &first)] {
            let err = format_dir(dir.path(), node, cluster)
                .unwrap_err()
                .to_string();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(
                err.contains(&first) && err.contains(cluster.as_str()),
                "{err}"
            );
            assert!(err.contains("node.id 1") && err.contains(&format!("node.id {node}")));
        }
        assert_eq!(fs::read_to_string(&path).unwrap(), before);
    }

    #[test]
    fn meta_properties_parse_skips_comments_and_needs_both_ids() {
        let parsed =
            MetaProperties::parse("#written by hand\n\nversion=1\nnode.id= 7\ncluster.id=abc\n")
                .unwrap();
        assert_eq!(
            parsed,
            MetaProperties {
                node_id: 7,
                cluster_id: "abc".into()
            }
        );
        assert!(MetaProperties::parse("version=1\nnode.id=1\n").is_err());
        assert!(MetaProperties::parse("node.id=x\ncluster.id=abc\n").is_err());
        assert!(MetaProperties::parse("garbage\n").is_err());
    }
}

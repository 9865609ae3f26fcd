//! The on-disk layout: one redb file in the data directory, its tables, and
//! the format marker that lets a foreign or newer store be refused before
//! anything is read or written.

use super::error::StoreError;
use redb::{Database, ReadableDatabase, TableDefinition};
use std::path::{Path, PathBuf};

/// The store file inside the data directory.
pub const FILE: &str = "broker-state.redb";
/// Where a new store is built before it is renamed into place, so that a kill
/// during creation never leaves a half-made store under `FILE`.
const FILE_NEW: &str = "broker-state.redb.new";
/// The marker every store holds under `meta["format"]`.
pub const FORMAT_MAGIC: &[u8] = b"topicgate-broker-store";
/// Bumped on any change to a table or a record (see `record.rs`).
/// 2: the `outbound` table (decision 0030); 3: the `open_wills` table
/// (decision 0031). A version 1 or 2 store is migrated at open (the missing
/// tables are added, nothing else changes).
pub const FORMAT_VERSION: u32 = 3;

/// "format" -> magic, "version" -> u32 big-endian.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// client ID -> `SessionRecord`.
pub const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// (client ID, sequence) -> `MessageRecord`: QoS 1/2 copies not yet
/// acknowledged by the session, in the order they were queued.
pub const QUEUE: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("queue");
/// (client ID, sequence) -> `OutboundRecord`: the packet identifier a queued
/// copy was sent under and the state of its exchange (QoS 2 only, decision
/// 0030); removed with the copy.
pub const OUTBOUND: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("outbound");
/// (client ID, packet ID): the session's QoS 2 PUBLISHes that were answered
/// PUBREC and not yet released (exactly once across a restart).
pub const QOS2_IN: TableDefinition<(&str, u16), ()> = TableDefinition::new("qos2_in");
/// client ID -> `OpenWillRecord`: the will of each open connection that has
/// one, so that a crash does not lose it (format version 3).
pub const OPEN_WILLS: TableDefinition<&str, &[u8]> = TableDefinition::new("open_wills");
/// topic -> `MessageRecord`.
pub const RETAINED: TableDefinition<&str, &[u8]> = TableDefinition::new("retained");

/// Opens the store in `dir`, creating it when the directory is new or empty.
/// Refuses a directory holding anything else, a store of another format
/// version, and a store that cannot be read; never empties or rewrites one.
pub fn open(dir: &Path) -> Result<Database, StoreError> {
    let io = |source| StoreError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let file = dir.join(FILE);
    if !file.exists() {
        let others = foreign_entries(dir).map_err(io)?;
        if !others.is_empty() {
            return Err(StoreError::Foreign {
                dir: dir.to_path_buf(),
                why: format!(
                    "it holds {} and no `{FILE}`",
                    others
                        .iter()
                        .take(3)
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        create(dir).map_err(io)?;
    }
    let db = Database::open(&file).map_err(|e| opening_failed(dir, e))?;
    let found = check_marker(dir, &db)?;
    if found != FORMAT_VERSION {
        migrate(dir, &db, found)?;
    }
    Ok(db)
}

/// Names in `dir` other than a leftover of an interrupted creation.
fn foreign_entries(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name != FILE_NEW {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Builds an empty store with its marker beside `FILE`, then renames it into
/// place and syncs the directory: `FILE` exists only complete.
fn create(dir: &Path) -> std::io::Result<()> {
    let new: PathBuf = dir.join(FILE_NEW);
    if new.exists() {
        std::fs::remove_file(&new)?;
    }
    let db = Database::create(&new).map_err(std::io::Error::other)?;
    let tx = db.begin_write().map_err(std::io::Error::other)?;
    {
        let mut meta = tx.open_table(META).map_err(std::io::Error::other)?;
        meta.insert("format", FORMAT_MAGIC)
            .map_err(std::io::Error::other)?;
        meta.insert("version", &FORMAT_VERSION.to_be_bytes()[..])
            .map_err(std::io::Error::other)?;
        // Every table exists from the start, so that reading one never fails
        // for want of it.
        tx.open_table(SESSIONS).map_err(std::io::Error::other)?;
        tx.open_table(QUEUE).map_err(std::io::Error::other)?;
        tx.open_table(OUTBOUND).map_err(std::io::Error::other)?;
        tx.open_table(QOS2_IN).map_err(std::io::Error::other)?;
        tx.open_table(RETAINED).map_err(std::io::Error::other)?;
        tx.open_table(OPEN_WILLS).map_err(std::io::Error::other)?;
    }
    tx.commit().map_err(std::io::Error::other)?;
    drop(db);
    std::fs::rename(&new, dir.join(FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

fn opening_failed(dir: &Path, e: redb::DatabaseError) -> StoreError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse {
            dir: dir.to_path_buf(),
        },
        redb::DatabaseError::Storage(redb::StorageError::Io(source))
            if source.kind() != std::io::ErrorKind::InvalidData =>
        {
            StoreError::Io {
                dir: dir.to_path_buf(),
                source,
            }
        }
        other => StoreError::Damaged {
            dir: dir.to_path_buf(),
            why: format!("`{FILE}` cannot be opened: {other}"),
        },
    }
}

/// Versions 1 and 2 lack tables of the current one (1: `outbound` and
/// `open_wills`; 2: `open_wills`): adding them, empty, and the new version in
/// one transaction makes a current store (a kill before the commit leaves
/// the old store as it was). Opening a table that exists changes nothing.
fn migrate(dir: &Path, db: &Database, from: u32) -> Result<(), StoreError> {
    let failed = |e: String| StoreError::Write {
        dir: dir.to_path_buf(),
        why: format!("migrating the store from format version {from}: {e}"),
    };
    let tx = db.begin_write().map_err(|e| failed(e.to_string()))?;
    tx.open_table(OUTBOUND).map_err(|e| failed(e.to_string()))?;
    tx.open_table(OPEN_WILLS)
        .map_err(|e| failed(e.to_string()))?;
    tx.open_table(META)
        .map_err(|e| failed(e.to_string()))?
        .insert("version", &FORMAT_VERSION.to_be_bytes()[..])
        .map_err(|e| failed(e.to_string()))?;
    tx.commit().map_err(|e| failed(e.to_string()))
}

/// Checks the marker; returns the format version found (the current one,
/// or 1 or 2, which `open` migrates).
fn check_marker(dir: &Path, db: &Database) -> Result<u32, StoreError> {
    let damaged = |why: String| StoreError::Damaged {
        dir: dir.to_path_buf(),
        why,
    };
    let foreign = |why: &str| StoreError::Foreign {
        dir: dir.to_path_buf(),
        why: why.to_string(),
    };
    let tx = db.begin_read().map_err(|e| damaged(e.to_string()))?;
    let meta = match tx.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => {
            return Err(foreign("its database has no topicgate format marker"))
        }
        Err(e) => return Err(damaged(e.to_string())),
    };
    let magic = meta.get("format").map_err(|e| damaged(e.to_string()))?;
    if magic.as_ref().map(|m| m.value()) != Some(FORMAT_MAGIC) {
        return Err(foreign("its database has no topicgate format marker"));
    }
    let version = meta
        .get("version")
        .map_err(|e| damaged(e.to_string()))?
        .and_then(|v| <[u8; 4]>::try_from(v.value()).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| damaged("the format version is missing".into()))?;
    if !(1..=FORMAT_VERSION).contains(&version) {
        return Err(StoreError::UnsupportedVersion {
            dir: dir.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(version)
}

//! Store primitives: listing, bounded reads (the declared size checked before the body),
//! create-if-absent, delete, the objects of a writer's log read and checked, the stored
//! snapshots listed; and the mapping of store and local errors to [`Error`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{Error, Result};
use crate::ids::{Epoch, GuildId, LogPosition, Seq};

use super::keys::parse_num;
use super::ownership::hex;
use super::{batch, objects, LogObject, Marker, Remote, BATCH_LEN_MAX};

pub(super) fn remote_err(op: &'static str, key: &ObjectPath, e: object_store::Error) -> Error {
    Error::Remote {
        op,
        key: key.to_string(),
        source: Box::new(e),
    }
}

pub(super) fn corrupt(key: &ObjectPath, offset: Option<u64>, detail: impl Into<String>) -> Error {
    Error::RemoteCorrupt {
        key: key.to_string(),
        offset,
        detail: detail.into(),
    }
}

pub(super) fn local_io(op: &'static str, path: &Path, e: std::io::Error) -> Error {
    Error::io(op, path, e)
}

impl Remote {
    /// One level of names under `rel` (objects and sub-prefixes, last path segment only).
    pub(super) async fn list(&self, rel: &str) -> Result<(Vec<String>, Vec<String>)> {
        let key = self.key(rel);
        let listed = self
            .store
            .list_with_delimiter(Some(&key))
            .await
            .map_err(|e| remote_err("list", &key, e))?;
        let last = |p: &ObjectPath| p.filename().unwrap_or_default().to_string();
        Ok((
            listed.objects.iter().map(|o| last(&o.location)).collect(),
            listed.common_prefixes.iter().map(last).collect(),
        ))
    }

    /// The positions of writer `writer`'s log after `after`, ascending.
    pub(super) async fn positions_after(
        &self,
        writer: &str,
        after: LogPosition,
    ) -> Result<Vec<LogPosition>> {
        let prefix = self.key(&format!("writers/{writer}"));
        let listed: Vec<object_store::ObjectMeta> = if after == LogPosition::NONE {
            self.store.list(Some(&prefix)).try_collect().await
        } else {
            let offset = self.writer_key(writer, after);
            self.store
                .list_with_offset(Some(&prefix), &offset)
                .try_collect()
                .await
        }
        .map_err(|e| remote_err("list", &prefix, e))?;
        let mut positions: Vec<LogPosition> = listed
            .iter()
            .filter_map(|o| parse_num(o.location.filename()?).map(LogPosition))
            .filter(|&p| p > after)
            .collect();
        positions.sort_unstable();
        Ok(positions)
    }

    /// Reads a whole object of at most `len_max` bytes; `None` when it does not exist. The
    /// declared size is checked before the body is read, and the body is read no further.
    pub(super) async fn get(&self, key: &ObjectPath, len_max: u64) -> Result<Option<Vec<u8>>> {
        let got = match self.store.get(key).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(remote_err("get", key, e)),
        };
        if got.meta.size > len_max {
            return Err(corrupt(
                key,
                None,
                format!(
                    "{} bytes, more than any valid object of its kind ({len_max})",
                    got.meta.size
                ),
            ));
        }
        let bytes = got.bytes().await.map_err(|e| remote_err("get", key, e))?;
        if bytes.len() as u64 > len_max {
            return Err(corrupt(key, None, "longer than its declared size"));
        }
        Ok(Some(bytes.to_vec()))
    }

    /// Creates `key` unless it exists: `true` when this call created it.
    pub(super) async fn create(&self, key: &ObjectPath, bytes: Vec<u8>) -> Result<bool> {
        let opts = PutOptions::from(PutMode::Create);
        match self
            .store
            .put_opts(key, PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(e) => Err(remote_err("create", key, e)),
        }
    }

    /// Deletes `key` (already gone is fine: retention may run twice).
    pub(super) async fn delete(&self, key: &ObjectPath) -> Result<()> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(remote_err("delete", key, e)),
        }
    }

    /// Reads and checks the object at `position` of `writer`'s log (through `cache`: the
    /// objects are immutable). `None` when it does not exist.
    pub(super) async fn read_log_object(
        &self,
        writer: &str,
        position: LogPosition,
        cache: &mut HashMap<(String, LogPosition), LogObject>,
    ) -> Result<Option<LogObject>> {
        if let Some(o) = cache.get(&(writer.to_string(), position)) {
            return Ok(Some(o.clone()));
        }
        let key = self.writer_key(writer, position);
        let Some(bytes) = self.get(&key, BATCH_LEN_MAX).await? else {
            return Ok(None);
        };
        let object = classify(&key, writer, position, &bytes)?;
        cache.insert((writer.to_string(), position), object.clone());
        Ok(Some(object))
    }
    /// The guild's snapshots in the remote: (seq, uploader's epoch). Skip-path uploads
    /// (`.skip`) are not among them: see [`Remote::skip_snapshot_key`].
    pub(super) async fn snapshots(&self, guild: GuildId) -> Result<Vec<(Seq, Epoch)>> {
        Ok(self
            .snapshot_objects(guild)
            .await?
            .into_iter()
            .filter(|&(_, _, skip)| !skip)
            .map(|(s, e, _)| (s, e))
            .collect())
    }

    /// Every snapshot object of the guild: (seq, uploader's epoch, uploaded on the skip path).
    pub(super) async fn snapshot_objects(&self, guild: GuildId) -> Result<Vec<(Seq, Epoch, bool)>> {
        let (names, _) = self.list(&format!("guilds/{}/snap", guild.0)).await?;
        Ok(names
            .iter()
            .filter_map(|n| {
                let (stem, skip) = match n.strip_suffix(".snap") {
                    Some(stem) => (stem, false),
                    None => (n.strip_suffix(".skip")?, true),
                };
                let (s, e) = stem.split_once('-')?;
                Some((parse_num(s)?, Epoch(parse_num(e)?), skip))
            })
            .collect())
    }

    /// The guild's newest snapshot in the remote among those `keep` accepts (by seq and epoch):
    /// (seq, epoch).
    pub(super) async fn newest_snapshot(
        &self,
        guild: GuildId,
        keep: impl Fn(Seq, Epoch) -> bool,
    ) -> Result<Option<(Seq, Epoch)>> {
        Ok(self
            .snapshots(guild)
            .await?
            .into_iter()
            .filter(|&(s, e)| keep(s, e))
            .max())
    }
}

/// Checks an object of a writer's log and says what it is.
fn classify(
    key: &ObjectPath,
    writer: &str,
    position: LogPosition,
    bytes: &[u8],
) -> Result<LogObject> {
    if batch::is_batch(bytes) {
        let b = batch::decode(bytes).map_err(|f| corrupt(key, Some(f.offset), f.detail))?;
        if b.position != position || hex(&b.writer) != writer {
            return Err(corrupt(
                key,
                Some(0),
                "batch names another writer or position",
            ));
        }
        return Ok(LogObject::Batch(Arc::new(b)));
    }
    if bytes.len() as u64 > objects::SMALL_OBJECT_LEN_MAX {
        return Err(corrupt(key, None, "neither a batch nor a marker"));
    }
    let marker: Marker = objects::decode(bytes).map_err(|d| corrupt(key, None, d))?;
    Ok(LogObject::Marker(marker))
}

//! A fault-injecting [`ObjectStore`] for tests and simulations: wraps any store (usually
//! [`object_store::memory::InMemory`]) and, from a seeded generator, delays requests (on
//! tokio's clock, so a runtime with a paused clock makes runs deterministic and instant; random
//! delays reorder concurrent requests), fails them before they reach the store, loses the
//! answer of a write that succeeded, or refuses everything while the store is "down"; a
//! listing may still show an object deleted just before it (a *ghost*: listed, then gone
//! when read, as when a delete races a listing). It also counts requests (PUT, GET, LIST) for
//! the cost model. Several `FaultyStore`s over one inner store are several clients of it,
//! each with its own link: [`FaultyStore::set_down`] on one partitions that client only.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// What a [`FaultyStore`] does to requests. Probabilities are per mille.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Longest delay before a request reaches the store, and before its answer comes back.
    pub delay_max: Duration,
    /// Requests failing before they reach the store.
    pub fail_per_mille: u32,
    /// Writes that succeed in the store but whose answer is lost (the caller sees an error).
    pub lose_answer_per_mille: u32,
    /// Objects deleted since the previous listing that the next listing covering them still
    /// shows (each deleted object is a candidate for one listing only).
    pub ghost_per_mille: u32,
}

/// Request counts of a [`FaultyStore`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requests {
    /// Writes (PUT).
    pub puts: u64,
    /// Reads (GET, HEAD).
    pub gets: u64,
    /// Listings.
    pub lists: u64,
}

/// The fault-injecting store. See the module docs.
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    faults: Mutex<Faults>,
    rng: Mutex<u64>,
    down: Arc<AtomicBool>,
    puts: AtomicU64,
    gets: AtomicU64,
    lists: AtomicU64,
    /// Milliseconds every listed object's `last_modified` is moved back by.
    aged_ms: AtomicU64,
    /// Objects deleted since the last listing that covered them (ghost candidates).
    deleted: Arc<Mutex<Vec<ObjectMeta>>>,
    /// Ghosts listed so far.
    ghosts: AtomicU64,
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "faulty({})", self.inner)
    }
}

fn injected(what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "faulty",
        source: what.to_string().into(),
    }
}

impl FaultyStore {
    /// Wraps `inner`; `seed` fixes every random choice.
    pub fn new(inner: Arc<dyn ObjectStore>, seed: u64, faults: Faults) -> FaultyStore {
        FaultyStore {
            inner,
            faults: Mutex::new(faults),
            rng: Mutex::new(seed ^ 0x9e37_79b9_7f4a_7c15),
            down: Arc::new(AtomicBool::new(false)),
            puts: AtomicU64::new(0),
            gets: AtomicU64::new(0),
            lists: AtomicU64::new(0),
            aged_ms: AtomicU64::new(0),
            deleted: Arc::new(Mutex::new(Vec::new())),
            ghosts: AtomicU64::new(0),
        }
    }

    /// Another client of the same store: it shares this one's inner store and its record of
    /// deletions (so its listings may show the ghosts of objects any client deleted), but has
    /// its own link ([`FaultyStore::set_down`]), faults, generator (from `seed`) and request
    /// counts.
    pub fn client(&self, seed: u64) -> FaultyStore {
        FaultyStore {
            inner: self.inner.clone(),
            faults: Mutex::new(self.faults()),
            rng: Mutex::new(seed ^ 0x9e37_79b9_7f4a_7c15),
            down: Arc::new(AtomicBool::new(false)),
            puts: AtomicU64::new(0),
            gets: AtomicU64::new(0),
            lists: AtomicU64::new(0),
            aged_ms: AtomicU64::new(self.aged_ms.load(Ordering::SeqCst)),
            deleted: self.deleted.clone(),
            ghosts: AtomicU64::new(0),
        }
    }

    /// From now on, listings show every object as modified `by` earlier than it was: the
    /// objects have aged (as if that much time had passed), for time-based rules such as
    /// [`crate::remote::NOTICE_AGE_MAX`].
    pub fn age_objects(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.aged_ms.store(ms, Ordering::SeqCst);
    }

    /// Changes the faults from now on.
    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    /// While `down`, every request fails before it reaches the store.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Requests seen so far (failed ones included).
    pub fn requests(&self) -> Requests {
        Requests {
            puts: self.puts.load(Ordering::SeqCst),
            gets: self.gets.load(Ordering::SeqCst),
            lists: self.lists.load(Ordering::SeqCst),
        }
    }

    /// Ghosts (objects already deleted) its listings showed so far.
    pub fn ghosts_listed(&self) -> u64 {
        self.ghosts.load(Ordering::SeqCst)
    }

    fn next(&self) -> u64 {
        // splitmix64
        let mut s = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn faults(&self) -> Faults {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn chance(&self, per_mille: u32) -> bool {
        per_mille > 0 && self.next() % 1000 < u64::from(per_mille)
    }

    async fn delay(&self) {
        let max = self.faults().delay_max.as_micros() as u64;
        if max > 0 {
            tokio::time::sleep(Duration::from_micros(self.next() % (max + 1))).await;
        }
    }

    /// The ghosts of a listing of `prefix` (`direct`: only its immediate children): every
    /// deleted object it covers stops being a candidate, and each shows up with the ghost
    /// chance.
    fn ghosts(&self, prefix: Option<&Path>, direct: bool) -> Vec<ObjectMeta> {
        let per_mille = self.faults().ghost_per_mille;
        let mut deleted = self.deleted.lock().unwrap_or_else(|p| p.into_inner());
        let covers = |m: &ObjectMeta| {
            let Some(prefix) = prefix else {
                return !direct || m.location.parts().count() == 1;
            };
            match m.location.prefix_match(prefix) {
                Some(rest) => !direct || rest.count() == 1,
                None => false,
            }
        };
        let (covered, kept): (Vec<ObjectMeta>, Vec<ObjectMeta>) =
            deleted.drain(..).partition(|m| covers(m));
        *deleted = kept;
        drop(deleted);
        let ghosts: Vec<ObjectMeta> = covered
            .into_iter()
            .filter(|_| self.chance(per_mille))
            .collect();
        self.ghosts.fetch_add(ghosts.len() as u64, Ordering::SeqCst);
        ghosts
    }

    /// Delay, then maybe fail before reaching the store.
    async fn before(&self, counter: &AtomicU64) -> Result<()> {
        counter.fetch_add(1, Ordering::SeqCst);
        self.delay().await;
        if self.down.load(Ordering::SeqCst) {
            return Err(injected("store unreachable (down)"));
        }
        if self.chance(self.faults().fail_per_mille) {
            return Err(injected("request failed"));
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.before(&self.puts).await?;
        let result = self.inner.put_opts(location, payload, opts).await;
        self.delay().await;
        if result.is_ok() && self.chance(self.faults().lose_answer_per_mille) {
            return Err(injected("answer lost after the write succeeded"));
        }
        result
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.before(&self.puts).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.before(&self.gets).await?;
        let result = self.inner.get_opts(location, options).await;
        self.delay().await;
        result
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        use futures_util::StreamExt;
        let deleted = self.deleted.clone();
        let down = self.down.clone();
        // A client cut off from the store deletes nothing.
        let locations = locations
            .map(move |location| match location {
                Ok(_) if down.load(Ordering::SeqCst) => Err(injected("store unreachable (down)")),
                other => other,
            })
            .boxed();
        self.inner
            .delete_stream(locations)
            .map(move |result| {
                if let Ok(location) = &result {
                    deleted
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(ObjectMeta {
                            location: location.clone(),
                            last_modified: std::time::SystemTime::now().into(),
                            size: 0,
                            e_tag: None,
                            version: None,
                        });
                }
                result
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        use futures_util::StreamExt;
        self.lists.fetch_add(1, Ordering::SeqCst);
        let aged = Duration::from_millis(self.aged_ms.load(Ordering::SeqCst));
        let ghosts = self.ghosts(prefix, false);
        let listed = if ghosts.is_empty() {
            self.inner.list(prefix)
        } else {
            // The real objects, with the ghosts in key order among them (as a listing gives).
            let inner = self.inner.list(prefix);
            futures_util::stream::once(async move {
                let mut all: Vec<Result<ObjectMeta>> = inner.collect().await;
                all.extend(ghosts.into_iter().map(Ok));
                all.sort_by(|a, b| match (a, b) {
                    (Ok(a), Ok(b)) => a.location.cmp(&b.location),
                    _ => std::cmp::Ordering::Equal,
                });
                futures_util::stream::iter(all)
            })
            .flatten()
            .boxed()
        };
        if aged.is_zero() {
            return listed;
        }
        listed
            .map(move |meta| {
                meta.map(|mut m| {
                    let at = std::time::SystemTime::from(m.last_modified);
                    m.last_modified = at.checked_sub(aged).unwrap_or(at).into();
                    m
                })
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.before(&self.lists).await?;
        let mut result = self.inner.list_with_delimiter(prefix).await;
        if let Ok(listed) = &mut result {
            listed.objects.extend(self.ghosts(prefix, true));
            listed.objects.sort_by(|a, b| a.location.cmp(&b.location));
        }
        self.delay().await;
        result
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.before(&self.puts).await?;
        self.inner.copy_opts(from, to, options).await
    }
}

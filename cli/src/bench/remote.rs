//! The rows `reprise bench --remote URL` adds after the local ones (CONTRACT §5), measured
//! against the object store of the URL in the same run:
//!
//! - `s3 PUT floor`: one create-only PUT of 128 bytes per event, sequential — the physical
//!   limit of one stream of acknowledgements that each wait for the store;
//! - `reprise remote 64 guilds`: 64 guilds appending concurrently through the async runtime
//!   with [`Durability::Remote`] (acknowledged once stored in the store; the guilds of a
//!   shipping round share one batch object: group commit to the store);
//! - `claim`: [`Remote::claim`] of a guild holding a 1,000-track queue into an empty directory.
//!
//! Every run works under its own key prefix, the URL's prefix plus `bench-<pid>-<unix secs>`
//! (so runs never see each other's objects), and deletes every object under it at the end,
//! best effort ([`RemoteBench`]'s `Drop`). Each row uses its own sub-prefix. Requests are
//! counted by wrapping the store in [`FaultyStore`] without faults (a few atomic increments per
//! request).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use reprise::remote::faulty::{Faults, FaultyStore, Requests};
use reprise::remote::Remote;
use reprise::runtime::RemoteOptions;
use reprise::session::events_for_state;
use reprise::{Config, Durability, Journal, Reprise};
use serde_json::json;

use super::reprise_rows::{bench_guilds, concurrent_appends, snapshot_state};
use super::row::{Guarantee, Row, Samples, CLAIM, REPRISE_REMOTE_64, S3_PUT_FLOOR};
use super::stream::Stream;
use super::{Plan, Scratch, FLOOR_RECORD_BYTES, GUILDS};
use crate::Failure;

/// Untimed PUTs before the `s3 PUT floor` row's clock starts (connection set-up).
const PUT_WARMUP: usize = 20;
/// The body of every PUT of the `s3 PUT floor` row.
static PUT_RECORD: [u8; FLOOR_RECORD_BYTES] = [0x5A; FLOOR_RECORD_BYTES];
/// The owner name of the directories that ship.
const OWNER: &str = "bench";
/// The owner name of the directories that claim.
const CLAIM_OWNER: &str = "bench-claim";
/// Longest the final deletion of the run's objects may take.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Legend lines of the table when the remote rows are present.
pub(super) const LEGEND: [&str; 9] = [
    "  remote rows (--remote; the run works under its own key prefix, deleted afterwards):",
    "  acknowledged once stored in the object store (survive the loss of the machine).",
    "  vs reprise = ops/s / ops/s of `reprise remote 64 guilds` (concurrent guilds share",
    "  one batch object per shipping round); vs floor = ops/s / ops/s of `s3 PUT floor`",
    "  (one 128 B create-only PUT per event, sequential: the store's limit for one stream",
    "  of acknowledgements). claim: a guild with a 1,000-track queue, shipped with its",
    "  snapshot, claimed into an empty directory; p50/p99 per claim, ops/s = claims per",
    "  second of claim time (the directory's creation is untimed); like replay and",
    "  snapshot it has no peer (vs reprise 1 by definition).",
];

/// One remote row: measures and returns it.
pub(super) type RemoteRowFn = fn(&RemoteBench, &Scratch, &Stream, &Plan) -> Result<Row, Failure>;

/// The store of `--remote`, opened under the run's own key prefix, with the runtime its
/// requests run on. Dropping it deletes every object under that prefix (best effort).
pub(super) struct RemoteBench {
    /// Multi-threaded (2 workers), as a bot's runtime.
    rt: tokio::runtime::Runtime,
    /// The store opened from the run's URL (`--remote` plus `/bench-<pid>-<unix secs>`),
    /// keys under the run's prefix.
    root: Remote,
    /// The run's key prefix in the store (empty for `file://`, whose store is rooted there).
    prefix: String,
    /// For `file://`: the run's directory, removed after its objects.
    local_dir: Option<PathBuf>,
    /// For `file://`: the URL's directory when the run created it (removed if empty again).
    created_parent: Option<PathBuf>,
}

/// `url` with `/name` appended to its path: `s3://BUCKET/PREFIX` → `s3://BUCKET/PREFIX/name`,
/// `file:///PATH` → `file:///PATH/name`. Returns the new URL and the key prefix of the run in
/// the store that [`Remote::from_url`] opens for it (empty for `file://`, rooted at the path).
fn run_url(url: &str, name: &str) -> (String, String) {
    if let Some(path) = url.strip_prefix("file://") {
        return (
            format!("file://{}/{name}", path.trim_end_matches('/')),
            String::new(),
        );
    }
    let with_name = format!("{}/{name}", url.trim_end_matches('/'));
    let prefix = with_name
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .map_or_else(String::new, |(_, p)| p.trim_matches('/').to_owned());
    (with_name, prefix)
}

impl RemoteBench {
    /// Opens `url` under a fresh key prefix for this run.
    pub(super) fn open(url: &str) -> Result<RemoteBench, Failure> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Failure::new(4, format!("starting the async runtime: {e}")))?;
        let name = format!(
            "bench-{}-{}",
            std::process::id(),
            reprise::clock::now_unix_secs()
        );
        let (url, prefix) = run_url(url, &name);
        let local_dir = url.strip_prefix("file://").map(PathBuf::from);
        let created_parent = local_dir
            .as_deref()
            .and_then(std::path::Path::parent)
            .filter(|parent| !parent.exists())
            .map(PathBuf::from);
        let root = {
            let _guard = rt.enter();
            Remote::from_url(&url)?
        };
        Ok(RemoteBench {
            rt,
            root,
            prefix,
            local_dir,
            created_parent,
        })
    }

    /// The run's URL.
    pub(super) fn url(&self) -> &str {
        self.root.url()
    }

    /// The key of `rel` under the run's prefix.
    fn key(&self, rel: &str) -> ObjectPath {
        self.root.key(rel)
    }

    /// A remote under the run's prefix plus `sub`, through a request counter.
    fn remote(&self, sub: &str) -> (Arc<FaultyStore>, Remote) {
        let counter = Arc::new(FaultyStore::new(
            Arc::clone(self.root.store()),
            1,
            Faults::default(),
        ));
        let prefix = self.key(sub);
        let remote = Remote::new(
            Arc::clone(&counter) as Arc<dyn ObjectStore>,
            prefix.as_ref(),
        );
        (counter, remote)
    }

    /// Deletes every object under the run's prefix; returns how many.
    async fn delete_all(&self) -> object_store::Result<usize> {
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        let keys: Vec<ObjectPath> = self
            .root
            .store()
            .list(prefix.as_ref())
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        let count = keys.len();
        let keys = futures_util::stream::iter(keys.into_iter().map(Ok)).boxed();
        self.root
            .store()
            .delete_stream(keys)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(count)
    }
}

impl Drop for RemoteBench {
    /// Best effort: a failure to clean up is reported, and does not hide the result.
    fn drop(&mut self) {
        let deleted = self
            .rt
            .block_on(async { tokio::time::timeout(CLEANUP_TIMEOUT, self.delete_all()).await });
        match deleted {
            Ok(Ok(n)) => eprintln!("reprise: bench: deleted {n} objects under {}", self.url()),
            Ok(Err(e)) => eprintln!(
                "reprise: bench: warning: deleting the objects under {}: {e}",
                self.url()
            ),
            Err(_) => eprintln!(
                "reprise: bench: warning: deleting the objects under {} took over {:?}; \
                 some are left",
                self.url(),
                CLEANUP_TIMEOUT
            ),
        }
        if let Some(dir) = &self.local_dir {
            // Only the directories the objects were in are left.
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(parent) = &self.created_parent {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// A store failure of the benchmark's own requests (exit code 4).
fn store_failure(op: &str, key: &ObjectPath, e: object_store::Error) -> Failure {
    Failure::new(4, format!("bench: {op} {key}: {e}"))
}

/// Requests between two counts.
fn since(before: Requests, after: Requests) -> Requests {
    Requests {
        puts: after.puts - before.puts,
        gets: after.gets - before.gets,
        lists: after.lists - before.lists,
    }
}

/// `s3 PUT floor`: one create-only PUT (`PutMode::Create`, as reprise writes every object) of
/// 128 bytes per event of the stream, to a new key under the run's prefix, sequentially, each
/// awaited before the next; [`PUT_WARMUP`] untimed PUTs first. Stops early after the row
/// budget, as the local sequential rows do.
pub(super) fn s3_put_floor_row(
    bench: &RemoteBench,
    _scratch: &Scratch,
    stream: &Stream,
    plan: &Plan,
) -> Result<Row, Failure> {
    let events = stream.measured(plan.put_events);
    let put = |n: usize| async move {
        let key = bench.key(&format!("put-floor/{n:08}"));
        bench
            .root
            .store()
            .put_opts(
                &key,
                PutPayload::from_static(&PUT_RECORD),
                PutOptions::from(PutMode::Create),
            )
            .await
            .map_err(|e| store_failure("PUT", &key, e))
    };
    let samples = bench.rt.block_on(async {
        for n in 0..PUT_WARMUP {
            put(n).await?;
        }
        let mut samples = Samples::with_capacity(events.len());
        let mut done = 0u64;
        let start = Instant::now();
        for n in 0..events.len() {
            let t = Instant::now();
            put(PUT_WARMUP + n).await?;
            let end = Instant::now();
            samples.push(end.duration_since(t));
            done += 1;
            if end.duration_since(start) >= plan.row_budget {
                break;
            }
        }
        let wall = start.elapsed();
        Ok::<_, Failure>(samples.finish(done, wall))
    })?;
    let mut row = Row::new(S3_PUT_FLOOR, Guarantee::MachineLoss, samples);
    row.extra
        .insert("object_bytes".into(), json!(FLOOR_RECORD_BYTES));
    Ok(row)
}

/// `reprise remote 64 guilds`: as `reprise durable 64 guilds` (the same guilds, stream and
/// timed part, [`concurrent_appends`]), through [`Reprise::open_with_remote`] with
/// [`Durability::Remote`]: an event is acknowledged once a shipping round stored it. Untimed
/// first: the warm-up prefix with `none` durability, except its last event, appended by every
/// guild at once with `remote` durability — each guild's first contact with the store, which
/// claims its epoch 1. `puts` (and `gets`, `lists`) count the store requests of the timed part.
pub(super) fn reprise_remote_64_row(
    bench: &RemoteBench,
    scratch: &Scratch,
    stream: &Stream,
    plan: &Plan,
) -> Result<Row, Failure> {
    let dir = scratch.sub("reprise-remote-64")?;
    let (counter, remote) = bench.remote("remote-64");
    let guilds = bench_guilds();
    let per_guild = plan.guild_events / GUILDS;
    let (first_contact, warmup) = stream
        .warmup()
        .split_last()
        .ok_or_else(|| Failure::new(4, "bench: empty warm-up"))?;
    let measured = stream.measured(per_guild).to_vec();
    let (samples, requests) = bench.rt.block_on(async {
        let config = Config::default().with_snapshot_interval(None);
        let options = RemoteOptions {
            remote,
            owner: OWNER.to_owned(),
        };
        let handle = Reprise::open_with_remote(&dir, config, options).await?;
        for guild in &guilds {
            handle
                .append_many_with(*guild, warmup.to_vec(), Some(Durability::None))
                .await?;
        }
        handle.flush().await?;
        let mut tasks = Vec::with_capacity(guilds.len());
        for guild in guilds.iter().copied() {
            let (handle, event) = (handle.clone(), first_contact.clone());
            tasks.push(tokio::spawn(async move {
                handle.append_with(guild, event, Durability::Remote).await
            }));
        }
        for task in tasks {
            task.await
                .map_err(|e| Failure::new(4, format!("bench task failed: {e}")))??;
        }
        let before = counter.requests();
        let samples = concurrent_appends(&handle, guilds, measured, Durability::Remote).await?;
        let requests = since(before, counter.requests());
        handle.shutdown().await?;
        Ok::<_, Failure>((samples, requests))
    })?;
    let events_per_put = samples.ops as f64 / requests.puts.max(1) as f64;
    let mut row = Row::new(REPRISE_REMOTE_64, Guarantee::MachineLoss, samples);
    row.extra.insert("guilds".into(), json!(GUILDS));
    row.extra.insert("puts".into(), json!(requests.puts));
    row.extra.insert("gets".into(), json!(requests.gets));
    row.extra.insert("lists".into(), json!(requests.lists));
    row.extra.insert(
        "events_per_put".into(),
        json!((events_per_put * 10.0).round() / 10.0),
    );
    Ok(row)
}

/// `claim`: `claim_guilds` guilds each holding the `snapshot` row's 1,000-track state (as the
/// events that rebuild it, [`events_for_state`], as `reprise import` writes them) are
/// appended, snapshotted and shipped from one source directory (untimed); then each guild is
/// claimed ([`Remote::claim`]: fence, download, verify, recover) into a fresh, empty directory
/// of its own. Only the claim is timed (opening the directory is not); `ops_per_s` is claims
/// per second of claim time. Every claim must recover the source's seq.
pub(super) fn claim_row(
    bench: &RemoteBench,
    scratch: &Scratch,
    _stream: &Stream,
    plan: &Plan,
) -> Result<Row, Failure> {
    let (state, source) = snapshot_state()?;
    let events = events_for_state(&state);
    let (counter, remote) = bench.remote("claim");
    let guilds: Vec<_> = bench_guilds().into_iter().take(plan.claim_guilds).collect();
    let mut journal = Journal::open(scratch.sub("claim-source")?, Config::default())?;
    let mut seqs = Vec::with_capacity(guilds.len());
    for &guild in &guilds {
        for event in &events {
            journal.append(guild, event, Durability::None)?;
        }
        journal.snapshot_now(guild)?;
        seqs.push(journal.state(guild)?.seq);
    }
    // Everything durable before it is shipped, as `reprise ship` does.
    journal.retire_commit_logs(false)?;
    bench
        .rt
        .block_on(remote.ship(&mut journal, &guilds, OWNER))?;
    journal.close()?;
    let before = counter.requests();
    let mut samples = Samples::with_capacity(guilds.len());
    let mut claim_time = Duration::ZERO;
    for (i, (&guild, &seq)) in guilds.iter().zip(&seqs).enumerate() {
        let mut target = Journal::open(scratch.sub(&format!("claim-{i}"))?, Config::default())?;
        let t = Instant::now();
        let claimed = bench
            .rt
            .block_on(remote.claim(&mut target, guild, CLAIM_OWNER))?;
        let took = t.elapsed();
        samples.push(took);
        claim_time += took;
        if claimed.seq != seq {
            return Err(Failure::new(
                2,
                format!(
                    "bench: the claim of guild {} recovered seq {}, the source has {seq}",
                    guild.0, claimed.seq
                ),
            ));
        }
        target.close()?;
    }
    let requests = since(before, counter.requests());
    let claims = guilds.len().max(1) as f64;
    let per_claim = |n: u64| (n as f64 / claims * 10.0).round() / 10.0;
    let samples = samples.finish(guilds.len() as u64, claim_time);
    let mut row = Row::new(CLAIM, Guarantee::Own, samples);
    row.extra.insert("guilds".into(), json!(guilds.len()));
    row.extra
        .insert("queue_tracks".into(), json!(state.queue.upcoming.len()));
    row.extra
        .insert("events_per_guild".into(), json!(events.len()));
    row.extra.insert(
        "requests_per_claim".into(),
        json!(per_claim(requests.puts + requests.gets + requests.lists)),
    );
    row.extra
        .insert("puts_per_claim".into(), json!(per_claim(requests.puts)));
    row.extra
        .insert("gets_per_claim".into(), json!(per_claim(requests.gets)));
    row.extra
        .insert("lists_per_claim".into(), json!(per_claim(requests.lists)));
    row.extra.insert("state_source".into(), json!(source));
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::run_url;

    #[test]
    fn run_url_appends_to_the_prefix() {
        let s3 = |u: &str| run_url(u, "bench-1-2");
        assert_eq!(
            s3("s3://b/x"),
            ("s3://b/x/bench-1-2".into(), "x/bench-1-2".into())
        );
        assert_eq!(
            s3("s3://b/x/y/"),
            ("s3://b/x/y/bench-1-2".into(), "x/y/bench-1-2".into())
        );
        assert_eq!(
            s3("s3://b"),
            ("s3://b/bench-1-2".into(), "bench-1-2".into())
        );
        assert_eq!(
            s3("file:///tmp/r/"),
            ("file:///tmp/r/bench-1-2".into(), String::new())
        );
        assert_eq!(s3("file:///"), ("file:///bench-1-2".into(), String::new()));
    }
}

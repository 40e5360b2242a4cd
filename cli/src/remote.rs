//! `--remote`, `reprise ship` and `reprise claim`: formatting and arguments only; the protocol
//! is `reprise::remote`.

use std::path::Path;
use std::time::Duration;

use reprise::remote::Remote;
use reprise::{GuildId, Journal};

use crate::output::{print_json_line, Out};
use crate::progress::Progress;
use crate::Failure;

/// An opened remote and the runtime its requests run on (object_store is async; the CLI
/// blocks on one request at a time on a current-thread runtime).
pub(crate) struct RemoteCtx {
    pub(crate) remote: Remote,
    pub(crate) owner: String,
    rt: tokio::runtime::Runtime,
}

impl RemoteCtx {
    /// Opens `url`; `owner` defaults to the host name.
    pub(crate) fn open(url: &str, owner: Option<String>) -> Result<RemoteCtx, Failure> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::new(4, format!("starting the async runtime: {e}")))?;
        let remote = {
            let _guard = rt.enter();
            // A URL that names no store (another scheme, no bucket, a relative path) is a
            // usage error, never "appending locally only": nothing was tried.
            Remote::from_url(url).map_err(|e| match e {
                reprise::Error::Remote { op: "open", .. } => Failure::new(1, e.to_string()),
                other => Failure::from(other),
            })?
        };
        Ok(RemoteCtx {
            remote,
            owner: owner.unwrap_or_else(default_owner),
            rt,
        })
    }

    /// Runs one remote operation to completion.
    pub(crate) fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.rt.block_on(f)
    }
}

/// The host name, as the default owner name.
fn default_owner() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "reprise".to_string())
}

/// `reprise ship [--guild G]`.
pub(crate) fn ship(
    dir: &Path,
    ctx: &RemoteCtx,
    guild: Option<GuildId>,
    out: &mut Out,
) -> Result<(), Failure> {
    let mut journal = Journal::open(dir, crate::base_config())?;
    // Everything recovered from an earlier process is made durable before it is shipped: the
    // remote never holds an event the local disk could still lose.
    journal.retire_commit_logs(false)?;
    let guilds = match guild {
        Some(g) => vec![g],
        None => journal.guilds()?,
    };
    // Every guild in one shipping round: one batch object when they fit (one step: the
    // summary only, no bar).
    let summary = Progress::new(0, "ship", "guilds", true);
    let report = ctx.block_on(ctx.remote.ship(&mut journal, &guilds, &ctx.owner))?;
    journal.close()?;
    summary.finish(&format!(
        "shipped {} guild(s): {} object(s), {} bytes",
        guilds.len(),
        report.objects,
        report.bytes
    ));
    print_json_line(
        out,
        &serde_json::json!({
            "guilds": guilds.len(),
            "objects": report.objects,
            "bytes": report.bytes,
        }),
    )
}

/// What `reprise claim` claims.
pub(crate) enum ClaimTarget {
    /// One guild.
    Guild(GuildId),
    /// Every guild of Discord shard `shard` of `shards` that the remote holds.
    Shard {
        /// The shard.
        shard: u64,
        /// The shard count.
        shards: u64,
    },
}

/// `reprise claim --guild G | --shard S --shards N`: one JSON line per guild claimed.
pub(crate) fn claim(
    dir: &Path,
    ctx: &RemoteCtx,
    target: ClaimTarget,
    pace: Duration,
    out: &mut Out,
) -> Result<(), Failure> {
    let mut journal = Journal::open(dir, crate::base_config())?;
    let guilds = match target {
        ClaimTarget::Guild(g) => vec![g],
        ClaimTarget::Shard { shard, shards } => {
            if shards == 0 || shard >= shards {
                return Err(Failure::new(
                    1,
                    "--shard must be below --shards (at least 1)",
                ));
            }
            ctx.block_on(ctx.remote.shard_guilds(shard, shards))?
        }
    };
    let bar = Progress::new(guilds.len() as u64, "claim", "guilds", false);
    for (i, g) in guilds.iter().enumerate() {
        bar.note(format!("guild {}", g.0));
        if i > 0 && !pace.is_zero() {
            // The pace limit between claims of a shard (not a wait for background work).
            std::thread::sleep(pace);
        }
        let claimed = ctx
            .block_on(ctx.remote.claim(&mut journal, *g, &ctx.owner))
            .map_err(|e| claim_failure(*g, e))?;
        if let Some(old) = &claimed.superseded {
            let held = old.seq.map_or_else(
                || "a damaged history".to_string(),
                |s| format!("events up to {s}"),
            );
            eprintln!(
                "reprise: guild {}: this directory's copy from epoch {} ({held}) was replaced by the \
                 store's history and kept in {} (events it acknowledged locally that never \
                 reached the store are not part of the guild's history)",
                g.0,
                old.epoch,
                old.path.display()
            );
        }
        print_json_line(
            out,
            &serde_json::json!({ "guild": claimed.guild.0, "epoch": claimed.epoch, "seq": claimed.seq }),
        )?;
        bar.inc(1);
    }
    journal.close()?;
    if guilds.len() > 1 || matches!(target, ClaimTarget::Shard { .. }) {
        bar.finish(&format!("claimed {} guild(s)", guilds.len()));
    }
    Ok(())
}

/// A failed claim of `guild`. Unless another claim won (`Fenced`), the message says what a
/// failure after the fence means (a full disk while the history is written here): the previous
/// owner may be fenced already, and the guild has no working owner until a claim succeeds.
fn claim_failure(guild: GuildId, e: reprise::Error) -> Failure {
    let fenced_by_other = matches!(e, reprise::Error::Fenced { .. });
    let mut f = Failure::from(e);
    if !fenced_by_other {
        f.message = format!(
            "{}; if this claim got as far as fencing the previous owner, no directory appends to \
             guild {} until a claim of it succeeds: run `reprise claim --guild {}` again (here once \
             the cause is fixed, or on another machine)",
            f.message, guild.0, guild.0
        );
    }
    f
}

/// Shipping for `apply` with `--remote` and a durability other than `remote`: a thread that
/// uploads the guild's durable events at the ship interval (CONTRACT §3: the remote lags the
/// local log by at most the ship interval), so that a store that is slow or down never holds
/// up a local acknowledgement. A failed round is retried with the runtime's backoff
/// ([`reprise::remote::ship_retry_delay`]);
/// the thread reports a newer owner, after which `apply` stops.
pub(crate) struct BackgroundShip {
    tx: Option<std::sync::mpsc::Sender<reprise::Seq>>,
    /// The last seq handed over ([`BackgroundShip::durable`]).
    handed: std::cell::Cell<reprise::Seq>,
    fenced: std::sync::Arc<std::sync::Mutex<Option<reprise::Error>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

/// How long the last round (when `apply` ends) may take before it is given up (what is
/// left is shipped by the next process or `reprise ship`).
const SHIP_FINAL_TIMEOUT: Duration = Duration::from_secs(10);

impl BackgroundShip {
    /// Starts the thread for `me` (found by `Remote::owner`) in `local`.
    pub(crate) fn start(
        remote: Remote,
        local: reprise::remote::LocalDir,
        writer: reprise::remote::Writer,
        me: reprise::remote::Owner,
        interval: Duration,
    ) -> BackgroundShip {
        let (tx, rx) = std::sync::mpsc::channel::<reprise::Seq>();
        let fenced = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen = std::sync::Arc::clone(&fenced);
        let handle = std::thread::Builder::new()
            .name("reprise-ship".into())
            .spawn(move || ship_loop(remote, local, writer, me, interval, rx, seen))
            .ok();
        BackgroundShip {
            tx: Some(tx),
            handed: std::cell::Cell::new(0),
            fenced,
            handle,
        }
    }

    /// Events up to `seq` are durable locally (flushed to the guild's segments).
    pub(crate) fn durable(&self, seq: reprise::Seq) {
        self.handed.set(self.handed.get().max(seq));
        if let Some(tx) = &self.tx {
            let _ = tx.send(seq);
        }
    }

    /// The last seq handed over.
    pub(crate) fn handed(&self) -> reprise::Seq {
        self.handed.get()
    }

    /// `Err(Fenced)` once a round found a newer owner.
    pub(crate) fn check(&self) -> Result<(), reprise::Error> {
        match self.fenced.lock().map(|mut f| f.take()) {
            Ok(Some(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Ships what is left (bounded by [`SHIP_FINAL_TIMEOUT`]) and joins the thread.
    pub(crate) fn finish(mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn ship_loop(
    remote: Remote,
    local: reprise::remote::LocalDir,
    mut writer: reprise::remote::Writer,
    me: reprise::remote::Owner,
    interval: Duration,
    rx: std::sync::mpsc::Receiver<reprise::Seq>,
    fenced: std::sync::Arc<std::sync::Mutex<Option<reprise::Error>>>,
) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let mut owners = vec![me];
    let mut target = 0;
    let mut failures = 0;
    let mut next_round = std::time::Instant::now() + interval;
    loop {
        let wait = next_round.saturating_duration_since(std::time::Instant::now());
        let last = match rx.recv_timeout(wait) {
            Ok(seq) => {
                target = target.max(seq);
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => false,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => true,
        };
        if target > owners[0].head {
            let targets = [target];
            let round = remote.ship_to(&local, &mut writer, &mut owners, &targets);
            let result = if last {
                rt.block_on(async {
                    tokio::time::timeout(SHIP_FINAL_TIMEOUT, round)
                        .await
                        .unwrap_or_else(|_| {
                            Err(reprise::remote::no_answer(
                                &remote,
                                "ship (the next process ships the rest)",
                                SHIP_FINAL_TIMEOUT,
                            ))
                        })
                })
            } else {
                rt.block_on(round)
            };
            match result.and_then(|_| owners[0].check()) {
                Ok(()) => failures = 0,
                Err(e @ reprise::Error::Fenced { .. }) => {
                    if let Ok(mut f) = fenced.lock() {
                        *f = Some(e);
                    }
                    return;
                }
                Err(e) => {
                    eprintln!("reprise: warning: shipping failed (retried later): {e}");
                    failures += 1;
                }
            }
        }
        if last {
            return;
        }
        next_round =
            std::time::Instant::now() + reprise::remote::ship_retry_delay(interval, failures);
    }
}

//! `--remote`, `reprise ship` and `reprise claim`: formatting and arguments only; the protocol
//! is `reprise::remote`.

use std::path::Path;
use std::time::Duration;

use reprise::remote::Remote;
use reprise::{GuildId, Journal};

use crate::output::{print_json_line, Out};
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
            Remote::from_url(url)?
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
    journal.checkpoint(false)?;
    let guilds = match guild {
        Some(g) => vec![g],
        None => journal.guilds()?,
    };
    // Every guild in one shipping round: one batch object when they fit.
    let report = ctx.block_on(ctx.remote.ship(&mut journal, &guilds, &ctx.owner))?;
    journal.close()?;
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
            ctx.block_on(ctx.remote.guilds())?
                .into_iter()
                .filter(|g| (g.0 >> 22) % shards == shard)
                .collect()
        }
    };
    for (i, g) in guilds.iter().enumerate() {
        if i > 0 && !pace.is_zero() {
            // The pace limit between claims of a shard (not a wait for background work).
            std::thread::sleep(pace);
        }
        let claimed = ctx.block_on(ctx.remote.claim(&mut journal, *g, &ctx.owner))?;
        print_json_line(
            out,
            &serde_json::json!({ "guild": claimed.guild.0, "epoch": claimed.epoch, "seq": claimed.seq }),
        )?;
    }
    journal.close()?;
    Ok(())
}

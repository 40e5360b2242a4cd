//! The command line: every command, option and value `reprise` accepts (clap), as parsed
//! before `main` runs it.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use reprise::Durability;

/// Crash-consistent session persistence for music bots.
#[derive(Debug, Parser)]
#[command(name = "reprise", version, about, long_about = None)]
pub(crate) struct Cli {
    /// The journal directory.
    #[arg(long, global = true, default_value = "./reprise-data")]
    pub(crate) dir: PathBuf,
    /// Encryption at rest: a file holding the key (32 random bytes, or 64 hex digits). Every
    /// file written is encrypted and authenticated with it; an encrypted journal cannot be read
    /// without it.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) key_file: Option<PathBuf>,
    /// Key rotation: a previous key file (repeatable). Files it sealed stay readable; everything
    /// new is sealed with --key-file (run `reprise snapshot` to re-encrypt every guild).
    #[arg(long, global = true, value_name = "FILE", requires = "key_file")]
    pub(crate) old_key_file: Vec<PathBuf>,
    /// The remote object store: s3://BUCKET/PREFIX (endpoint, region and credentials from the
    /// AWS_* variables) or file:///PATH. Needed by ship, claim and `apply --durability remote`;
    /// with it, `apply` first checks that no newer owner has claimed the guild.
    #[arg(long, global = true, value_name = "URL", env = "REPRISE_REMOTE")]
    pub(crate) remote: Option<String>,
    /// The owner name written into claims (default: the host name).
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) owner: Option<String>,
    /// No progress bar and no closing summary on stderr for long work (import, verify,
    /// rollback, claim --shard). The bar shows only when stderr is a terminal anyway.
    #[arg(long, short = 'q', global = true)]
    pub(crate) quiet: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a simulated bot, kill it mid-stream, recover and check that every acknowledged
    /// event survived.
    Demo {
        /// Number of guilds the simulated bot serves.
        #[arg(long, default_value_t = 200)]
        guilds: u32,
        /// Number of events the bot tries to append before it is killed.
        #[arg(long, default_value_t = 20_000)]
        events: u64,
        /// Seed of the workload and of the kill moment (default: from the clock).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Append events read as JSON lines on stdin to a guild; print {"seq": N} per acknowledged
    /// event.
    #[command(after_help = "Examples:\n  \
        printf '%s\\n' '{\"type\":\"volume_set\",\"volume\":80}' | reprise apply --guild 1\n  \
        reprise apply --guild 1 --durability batched < events.jsonl")]
    Apply {
        /// The guild id.
        #[arg(long)]
        guild: u64,
        /// When an event counts as acknowledged.
        #[arg(long, value_enum, default_value_t = DurabilityArg::Always)]
        durability: DurabilityArg,
        /// Disable automatic snapshots for this run.
        #[arg(long)]
        no_snapshots: bool,
        /// Roll to a new log segment once the active one reaches this many bytes
        /// (4096 ..= 1 GiB; default 8 MiB).
        #[arg(long, value_name = "BYTES")]
        segment_bytes_max: Option<u64>,
        /// Write an automatic snapshot every N events of a guild (default 10000; with
        /// --no-snapshots, none).
        #[arg(long, value_name = "N")]
        snapshot_every_events: Option<u64>,
        /// Snapshots kept per guild by retention after each automatic snapshot (at least 1;
        /// default 2); the log they cover is removed.
        #[arg(long, value_name = "N")]
        snapshots_retained: Option<u32>,
        /// Retire the commit log (make the guild segments durable and start a new generation)
        /// once it reaches this many bytes (at least 64 KiB; default 64 MiB).
        #[arg(long, value_name = "BYTES")]
        commit_bytes_max: Option<u64>,
        /// With --remote and a durability other than `remote`: upload the durable events at
        /// least this often, in milliseconds (the remote lags the local log by at most this).
        #[arg(long, value_name = "MS", default_value_t = 1000)]
        ship_interval_ms: u64,
    },
    /// Print the recovered state of a guild as JSON.
    #[command(after_help = "Examples:\n  \
        reprise state --guild 1\n  \
        reprise state --guild 1 --at 120\n  \
        reprise state --guild 1 --at-time 2025-10-09T14:30:00Z\n  \
        reprise state --guild 1 --format sonora")]
    State {
        /// The guild id.
        #[arg(long)]
        guild: u64,
        /// The state as of this sequence number.
        #[arg(long, conflicts_with = "at_time")]
        at: Option<u64>,
        /// The state as of this time (RFC 3339, e.g. 2025-10-09T14:30:00Z): after the last
        /// event appended at or before it.
        #[arg(long, value_name = "RFC3339")]
        at_time: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = StateFormat::Reprise)]
        format: StateFormat,
    },
    /// Write a Sonora 1.2.8 snapshot file of a guild's current state.
    #[command(after_help = "Examples:\n  \
        reprise export --guild 1 --format sonora -o guild_1.json\n  \
        reprise export --guild 1 --format sonora --only player,queue")]
    Export {
        /// The guild id.
        #[arg(long)]
        guild: u64,
        /// Output format (only `sonora`).
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Sections to include: any of player,queue,filters,autoplay (default: all).
        #[arg(long)]
        only: Option<reprise::sonora::Sections>,
        /// Write to this file instead of stdout (atomically replaced).
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// Write a snapshot now (every guild without --guild) and drop what it makes obsolete.
    Snapshot {
        /// Only this guild.
        #[arg(long)]
        guild: Option<u64>,
    },
    /// Check every file; print one JSON line per finding; exit 2 on damage.
    Verify,
    /// List guilds, segments, snapshots, sizes and sequence ranges (JSON).
    Inspect {
        /// Only this guild.
        #[arg(long)]
        guild: Option<u64>,
    },
    /// Print a guild's events as JSON lines, each with its seq.
    Dump {
        /// The guild id.
        #[arg(long)]
        guild: u64,
    },
    /// Benchmark reprise side by side with the fdatasync floor (preallocated, and appending),
    /// SQLite (WAL), Sonora's JSON files, redb and fjall, on the disk of --dir, and print a table (or JSON). With --remote, also against
    /// that object store (under a fresh key prefix, deleted afterwards): the S3 PUT floor, 64
    /// guilds with `remote` durability, and claims of a guild with a 1,000-track queue.
    Bench {
        /// A shorter run (well under a minute).
        #[arg(long)]
        quick: bool,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Import Sonora snapshot files: each becomes the state of its guild. Every file is
    /// checked (checksum, schema, ranges) before anything is written.
    #[command(after_help = "Examples:\n  \
        reprise import --check ./snapshots/guild_*.json\n  \
        reprise import ./snapshots/guild_*.json")]
    Import {
        /// Sonora 1.2.8 snapshot files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Only check the files (one JSON line each); write nothing.
        #[arg(long)]
        check: bool,
    },
    /// Print the Lavalink v4 PATCH /v4/sessions/{sessionId}/players/{guildId} body that restores
    /// a guild's player.
    #[command(after_help = "Examples:\n  \
        reprise lavalink --guild 1\n  \
        reprise lavalink --guild 1 --plan --only player,filters")]
    Lavalink {
        /// The guild id.
        #[arg(long)]
        guild: u64,
        /// The time to extrapolate the position to, in Unix milliseconds (default: now).
        #[arg(long)]
        now_unix_ms: Option<u64>,
        /// Sections to restore: any of player,queue,filters,autoplay (default: all).
        #[arg(long)]
        only: Option<reprise::sonora::Sections>,
        /// Print the whole restore plan (status, client-side queue, autoplay) around the body.
        #[arg(long)]
        plan: bool,
    },
    /// Analytics as JSON: guilds, events, segments, snapshots (count, bytes, age), bytes on disk.
    Stats {
        /// Only this guild.
        #[arg(long)]
        guild: Option<u64>,
    },
    /// Retention: remove snapshots past the policy and the log they make obsolete, never what
    /// the newest state needs.
    #[command(after_help = "Examples:\n  \
        reprise cleanup --keep 1 --dry-run\n  \
        reprise cleanup --max-age 30")]
    Cleanup {
        /// Remove snapshots older than this many days (never a guild's newest valid one).
        #[arg(long, value_name = "DAYS")]
        max_age: Option<f64>,
        /// Keep this many snapshots per guild (default 2; at least 1).
        #[arg(long, value_name = "N")]
        keep: Option<u32>,
        /// Only this guild.
        #[arg(long)]
        guild: Option<u64>,
        /// Remove copies set aside by remote claims (remote/superseded/) more than this many
        /// days ago (default 7).
        #[arg(long, value_name = "DAYS")]
        superseded_max_age: Option<f64>,
        /// Keep this many superseded copies per guild, the newest (default 3; at least 1).
        #[arg(long, value_name = "N")]
        superseded_keep: Option<usize>,
        /// Report what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Make a past state of a guild current again: appends one state_restored event (validated,
    /// with a restore point, verified, undone on failure); history is never rewritten.
    #[command(after_help = "Examples:\n  \
        reprise restore --guild 1 --to 120\n  \
        reprise restore --guild 1 --to-time 2025-10-09T14:30:00+02:00 --label before-spam")]
    Restore {
        /// The guild id.
        #[arg(long)]
        guild: u64,
        /// Restore the state as of this sequence number.
        #[arg(
            long,
            value_name = "SEQ",
            required_unless_present = "to_time",
            conflicts_with = "to_time"
        )]
        to: Option<u64>,
        /// Restore the state as of this time (RFC 3339).
        #[arg(long, value_name = "RFC3339")]
        to_time: Option<String>,
        /// A label recorded in the event (1 to 128 bytes).
        #[arg(long)]
        label: Option<String>,
    },
    /// Take a named checkpoint of every guild (a restore point for a deployment), or remove one.
    #[command(after_help = "Examples:\n  \
        reprise checkpoint before-v2.4\n  \
        reprise checkpoint before-v2.4 --remove")]
    Checkpoint {
        /// The checkpoint's name: 1 to 64 ASCII letters, digits, '.', '_' or '-'.
        label: String,
        /// Remove the checkpoint instead.
        #[arg(long)]
        remove: bool,
    },
    /// List the named checkpoints (JSON).
    Checkpoints,
    /// Restore guilds to a named checkpoint, in paced batches (one JSON line per guild).
    #[command(after_help = "Examples:\n  \
        reprise rollback before-v2.4\n  \
        reprise rollback before-v2.4 --guild 613425648685547541 --guild 1\n  \
        reprise rollback before-v2.4 --batch 50 --pace-ms 2000")]
    Rollback {
        /// The checkpoint's name.
        label: String,
        /// Only this guild (repeatable; default: every guild of the checkpoint).
        #[arg(long = "guild", value_name = "G")]
        guilds: Vec<u64>,
        /// Guilds per batch.
        #[arg(long, default_value_t = 25)]
        batch: usize,
        /// Least time between the starts of two batches, in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 1000)]
        pace_ms: u64,
    },
    /// Print a shell completion script on stdout.
    #[command(after_help = "Examples:\n  \
        reprise completions bash > /etc/bash_completion.d/reprise\n  \
        reprise completions zsh > \"${fpath[1]}/_reprise\"")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Upload to --remote every sealed segment, snapshot and acknowledged event it lacks; print
    /// the counts as JSON.
    Ship {
        /// Only this guild (default: every guild of the directory).
        #[arg(long)]
        guild: Option<u64>,
    },
    /// Make this directory the owner of a guild (or of a Discord shard's guilds) held in
    /// --remote: fence the previous owner, download, verify, recover; one JSON line per guild.
    Claim {
        /// The guild id.
        #[arg(long, required_unless_present = "shard", conflicts_with = "shard")]
        guild: Option<u64>,
        /// Claim every guild of this Discord shard, (guild >> 22) % shards == shard.
        #[arg(long, requires = "shards")]
        shard: Option<u64>,
        /// The shard count.
        #[arg(long, requires = "shard")]
        shards: Option<u64>,
        /// Pause between two guilds of a shard, in milliseconds.
        #[arg(long, default_value_t = 50)]
        pace_ms: u64,
    },
    /// The child process of `demo` (not for direct use).
    #[command(hide = true)]
    DemoWorker {
        #[arg(long)]
        guilds: u32,
        #[arg(long)]
        events: u64,
        #[arg(long)]
        seed: u64,
    },
    /// A child process of `bench` (`recover guilds`; not for direct use).
    #[command(hide = true)]
    BenchWorker {
        #[arg(long)]
        role: String,
        #[arg(long)]
        guilds: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum DurabilityArg {
    Always,
    Batched,
    None,
    /// Acknowledged once the event is stored in --remote (and fsynced locally).
    Remote,
}

impl From<DurabilityArg> for Durability {
    fn from(d: DurabilityArg) -> Self {
        match d {
            DurabilityArg::Always | DurabilityArg::Remote => Durability::Always,
            DurabilityArg::Batched => Durability::BATCHED,
            DurabilityArg::None => Durability::None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum StateFormat {
    /// reprise's own state JSON, with `guild` and `seq`.
    Reprise,
    /// Exactly what `export --format sonora` writes.
    Sonora,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormat {
    /// A Sonora 1.2.8 snapshot file, with a correct checksum.
    Sonora,
}

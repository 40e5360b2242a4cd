//! `reprise`: the command-line interface. Formatting and exit codes only; every check is a
//! library function.
//!
//! Exit codes (CONTRACT §2): 0 success; 1 usage error; 2 corrupt or invalid data; 3 locked by
//! another live process; 4 I/O error. A panic (101) is a bug. A closed stdout (broken pipe)
//! exits 0.

mod apply;
mod bench;
mod cleanup;
mod demo;
mod import;
mod lavalink;
mod output;
mod stats;

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use reprise::{Config, Durability, Error, GuildId, Journal};

use crate::output::{print_json_line, Out};

/// Crash-consistent session persistence for music bots.
#[derive(Debug, Parser)]
#[command(name = "reprise", version, about, long_about = None)]
struct Cli {
    /// The journal directory.
    #[arg(long, global = true, default_value = "./reprise-data")]
    dir: PathBuf,
    /// Encryption at rest: a file holding the key (32 random bytes, or 64 hex digits). Every
    /// file written is encrypted and authenticated with it; an encrypted journal cannot be read
    /// without it.
    #[arg(long, global = true, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Key rotation: a previous key file (repeatable). Files it sealed stay readable; everything
    /// new is sealed with --key-file (run `reprise snapshot` to re-encrypt every guild).
    #[arg(long, global = true, value_name = "FILE", requires = "key_file")]
    old_key_file: Vec<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    },
    /// Print the recovered state of a guild as JSON.
    State {
        /// The guild id.
        #[arg(long)]
        guild: u64,
        /// The state as of this sequence number.
        #[arg(long)]
        at: Option<u64>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = StateFormat::Reprise)]
        format: StateFormat,
    },
    /// Write a Sonora 1.2.8 snapshot file of a guild's current state.
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
    /// Benchmark reprise side by side with the fdatasync floor, SQLite (WAL) and Sonora's JSON
    /// files, on the disk of --dir, and print a table (or JSON).
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
        /// Report what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DurabilityArg {
    Always,
    Batched,
    None,
}

impl From<DurabilityArg> for Durability {
    fn from(d: DurabilityArg) -> Self {
        match d {
            DurabilityArg::Always => Durability::Always,
            DurabilityArg::Batched => Durability::BATCHED,
            DurabilityArg::None => Durability::None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum StateFormat {
    /// reprise's own state JSON, with `guild` and `seq`.
    Reprise,
    /// Exactly what `export --format sonora` writes.
    Sonora,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ExportFormat {
    /// A Sonora 1.2.8 snapshot file, with a correct checksum.
    Sonora,
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

/// Exit code of a library error (CONTRACT §2).
pub(crate) fn exit_code(e: &Error) -> u8 {
    match e {
        Error::Corrupt(_)
        | Error::InvalidEvent { .. }
        | Error::EventTooLarge { .. }
        | Error::KeyMismatch { .. }
        | Error::KeyInvalid { .. } => 2,
        Error::Locked { .. } => 3,
        Error::Io { .. } | Error::Poisoned { .. } | Error::Closed => 4,
        Error::Compacted { .. } | Error::SeqAhead { .. } | Error::ReadOnly => 1,
        _ => 4,
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::new(exit_code(&e), e.to_string())
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::new(4, format!("I/O error: {e}"))
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) if f.code == 0 => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("reprise: error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// The configuration every command starts from (the keys given on the command line).
static BASE_CONFIG: std::sync::OnceLock<Config> = std::sync::OnceLock::new();

/// The configuration every command starts from: the defaults plus the keys given.
pub(crate) fn base_config() -> Config {
    BASE_CONFIG.get().cloned().unwrap_or_default()
}

/// The key options given, to pass on to a child process (the demo's bot).
static KEY_ARGS: std::sync::OnceLock<Vec<std::ffi::OsString>> = std::sync::OnceLock::new();

/// The `--key-file`/`--old-key-file` arguments this process was given.
pub(crate) fn key_args() -> Vec<std::ffi::OsString> {
    KEY_ARGS.get().cloned().unwrap_or_default()
}

/// Loads `--key-file` and `--old-key-file` into a keyring.
fn load_keys(cli: &Cli) -> Result<Option<reprise::crypto::Keyring>, Failure> {
    use reprise::crypto::{Key, Keyring};
    let Some(current) = &cli.key_file else {
        return Ok(None);
    };
    let current = Key::from_file(current)?;
    let old = cli
        .old_key_file
        .iter()
        .map(Key::from_file)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Keyring::new(current, old)?))
}

fn run(cli: Cli) -> Result<(), Failure> {
    let keys = load_keys(&cli)?;
    let config = Config {
        keys,
        ..Config::default()
    };
    let _ = BASE_CONFIG.set(config);
    let mut args = Vec::new();
    for (flag, path) in cli
        .key_file
        .iter()
        .map(|p| ("--key-file", p))
        .chain(cli.old_key_file.iter().map(|p| ("--old-key-file", p)))
    {
        args.push(flag.into());
        args.push(path.clone().into_os_string());
    }
    let _ = KEY_ARGS.set(args);
    let dir = cli.dir;
    let mut out = Out::stdout();
    match cli.command {
        Command::Demo {
            guilds,
            events,
            seed,
        } => demo::run(&dir, guilds, events, seed),
        Command::Bench { quick, json } => bench::run(&dir, quick, json),
        Command::DemoWorker {
            guilds,
            events,
            seed,
        } => demo::worker(&dir, guilds, events, seed),
        Command::Apply {
            guild,
            durability,
            no_snapshots,
        } => apply::run(&dir, GuildId(guild), durability.into(), no_snapshots),
        Command::State { guild, at, format } => {
            let guild = GuildId(guild);
            let mut journal = Journal::open_read_only(&dir, base_config())?;
            warn_findings(&mut journal, guild)?;
            let gs = match at {
                Some(seq) => journal.state_at(guild, seq)?,
                None => journal.state(guild)?.clone(),
            };
            match format {
                StateFormat::Reprise => print_json_line(&mut out, &output::state_json(&gs)),
                StateFormat::Sonora => {
                    let text = sonora_text(&gs, reprise::sonora::Sections::ALL);
                    output::print_line(&mut out, &text)
                }
            }
        }
        Command::Export {
            guild,
            format,
            only,
            output: path,
        } => {
            let ExportFormat::Sonora = format;
            let guild = GuildId(guild);
            let mut journal = Journal::open_read_only(&dir, base_config())?;
            warn_findings(&mut journal, guild)?;
            let gs = journal.state(guild)?.clone();
            let text = sonora_text(&gs, only.unwrap_or_default());
            match path {
                Some(path) => write_file(&path, text.as_bytes()),
                None => output::print_line(&mut out, &text),
            }
        }
        Command::Snapshot { guild } => {
            let mut journal = Journal::open(&dir, base_config())?;
            let guilds = match guild {
                Some(g) => vec![GuildId(g)],
                None => journal.guilds()?,
            };
            let mut rows = Vec::new();
            for g in guilds {
                warn_findings(&mut journal, g)?;
                if let Some(seq) = journal.snapshot_now(g)? {
                    let path = reprise::layout::snapshot_path(&dir, g, seq);
                    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    rows.push(serde_json::json!({
                        "guild": g.0, "seq": seq, "file": path.display().to_string(), "bytes": bytes,
                    }));
                }
            }
            journal.close()?;
            print_json_line(&mut out, &serde_json::json!({ "snapshots": rows }))
        }
        Command::Verify => {
            let mut journal = Journal::open_read_only(&dir, base_config())?;
            let report = journal.verify()?;
            for f in &report.findings {
                print_json_line(&mut out, &output::finding_json(f))?;
            }
            let damage = report.findings.iter().filter(|f| f.is_damage()).count();
            eprintln!(
                "reprise: verified {} guilds, {} files, {} events: {} finding(s), {} damage",
                report.guilds,
                report.files,
                report.events,
                report.findings.len(),
                damage
            );
            if report.is_sound() {
                Ok(())
            } else {
                Err(Failure::new(
                    2,
                    format!("{damage} damaged structure(s) found; see the findings on stdout"),
                ))
            }
        }
        Command::Inspect { guild } => {
            let mut journal = Journal::open_read_only(&dir, base_config())?;
            let guilds = match guild {
                Some(g) => vec![GuildId(g)],
                None => journal.guilds()?,
            };
            let mut rows = Vec::new();
            for g in guilds {
                rows.push(output::guild_info_json(g, &journal.inspect(g)?));
            }
            print_json_line(
                &mut out,
                &serde_json::json!({ "dir": dir.display().to_string(), "guilds": rows }),
            )
        }
        Command::Import { files, check } => import::run(&dir, &files, check, &mut out),
        Command::Lavalink {
            guild,
            now_unix_ms,
            only,
            plan,
        } => lavalink::run(
            &dir,
            GuildId(guild),
            now_unix_ms,
            only.unwrap_or_default(),
            plan,
            &mut out,
        ),
        Command::Stats { guild } => stats::run(&dir, guild.map(GuildId), &mut out),
        Command::Cleanup {
            max_age,
            keep,
            guild,
            dry_run,
        } => cleanup::run(&dir, max_age, keep, guild.map(GuildId), dry_run, &mut out),
        Command::Dump { guild } => {
            let guild = GuildId(guild);
            let mut journal = Journal::open_read_only(&dir, base_config())?;
            warn_findings(&mut journal, guild)?;
            for item in journal.events(guild)? {
                let logged = item?;
                print_json_line(&mut out, &output::logged_event_json(&logged))?;
            }
            Ok(())
        }
    }
}

/// The Sonora file text of a guild's state, stamped with the current time.
fn sonora_text(gs: &reprise::GuildState, only: reprise::sonora::Sections) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let file = reprise::sonora::from_state(gs.guild.0, now, &gs.state, only);
    reprise::sonora::to_json(&file)
}

/// Writes a whole file atomically (temporary file, fsync, rename, fsync directory).
fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), Failure> {
    let storage = reprise::storage::FsStorage;
    reprise::storage::write_atomic(&storage, path, bytes).map_err(|(op, p, e)| {
        Failure::from(Error::Io {
            op,
            path: p,
            source: e,
        })
    })
}

/// Prints, as warnings on stderr, the damage recovery stepped around for `guild`.
fn warn_findings(journal: &mut Journal, guild: GuildId) -> Result<(), Failure> {
    for c in journal.recovery_findings(guild)? {
        if c.kind == reprise::CorruptionKind::TornTail {
            eprintln!("reprise: note: {c} (cut off by recovery)");
        } else {
            eprintln!("reprise: warning: {c} (recovery did not need this data)");
        }
    }
    Ok(())
}

//! `reprise`: the command-line interface. Formatting and exit codes only; every check is a
//! library function.
//!
//! Exit codes (CONTRACT §2): 0 success; 1 usage error; 2 corrupt or invalid data; 3 locked by
//! another live process; 4 I/O error. A panic (101) is a bug. A closed stdout (broken pipe)
//! exits 0.

mod apply;
mod args;
mod bench;
mod checkpoints;
mod cleanup;
mod demo;
mod import;
mod lavalink;
mod output;
mod progress;
mod remote;
mod restore;
mod stats;
mod time;

use std::io;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use reprise::{Config, Error, GuildId, Journal};

use crate::args::{Cli, Command, DurabilityArg, ExportFormat, StateFormat};
use crate::output::{print_json_line, Out};

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
        | Error::KeyInvalid { .. }
        | Error::RemoteCorrupt { .. } => 2,
        Error::Locked { .. } | Error::Busy { .. } | Error::Fenced { .. } => 3,
        Error::Io { .. } | Error::Poisoned { .. } | Error::Closed | Error::Remote { .. } => 4,
        Error::Compacted { .. }
        | Error::TimeCompacted { .. }
        | Error::SeqAhead { .. }
        | Error::ReadOnly
        | Error::Checkpoint { .. } => 1,
        Error::RestoreFailed {
            source: Some(source),
            ..
        } => exit_code(source),
        Error::RestoreFailed { source: None, .. } => 2,
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
    progress::set_quiet(cli.quiet);
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
        Command::Bench { quick, json } => bench::run(&dir, quick, json, cli.remote.as_deref()),
        Command::DemoWorker {
            guilds,
            events,
            seed,
        } => demo::worker(&dir, guilds, events, seed),
        Command::BenchWorker { role, guilds } => bench::worker(&dir, &role, guilds),
        Command::Apply {
            guild,
            durability,
            no_snapshots,
            segment_bytes_max,
            snapshot_every_events,
            snapshots_retained,
            commit_bytes_max,
            ship_interval_ms,
        } => {
            let mut config = base_config();
            if let Some(bytes) = segment_bytes_max {
                config = config.with_segment_bytes_max(bytes);
            }
            if let Some(events) = snapshot_every_events {
                let bytes = config.snapshot_every_bytes;
                config = config.with_snapshot_every(Some(events), bytes);
            }
            if let Some(count) = snapshots_retained {
                config = config.with_snapshots_retained(count);
            }
            if let Some(bytes) = commit_bytes_max {
                config = config.with_commit_bytes_max(bytes);
            }
            if no_snapshots {
                config = config.without_auto_snapshots();
            }
            let ctx = match &cli.remote {
                Some(url) => match remote::RemoteCtx::open(url, cli.owner.clone()) {
                    Ok(ctx) => Some(ctx),
                    // An unreachable store stops only `remote` acknowledgements.
                    Err(f) if durability != DurabilityArg::Remote && f.code == 4 => {
                        eprintln!("reprise: warning: {}; appending locally only", f.message);
                        None
                    }
                    Err(f) => return Err(f),
                },
                None if durability == DurabilityArg::Remote => {
                    return Err(Failure::new(
                        1,
                        "--durability remote needs --remote URL (or REPRISE_REMOTE)",
                    ))
                }
                None => None,
            };
            apply::run(
                &dir,
                config,
                GuildId(guild),
                durability.into(),
                ctx.as_ref(),
                durability == DurabilityArg::Remote,
                std::time::Duration::from_millis(ship_interval_ms.max(1)),
            )
        }
        Command::Ship { guild } => {
            let ctx = remote_ctx(&cli.remote, cli.owner.clone())?;
            remote::ship(&dir, &ctx, guild.map(GuildId), &mut out)
        }
        Command::Claim {
            guild,
            shard,
            shards,
            pace_ms,
        } => {
            let ctx = remote_ctx(&cli.remote, cli.owner.clone())?;
            let target = match (guild, shard, shards) {
                (Some(g), _, _) => remote::ClaimTarget::Guild(GuildId(g)),
                (None, Some(shard), Some(shards)) => remote::ClaimTarget::Shard { shard, shards },
                _ => {
                    return Err(Failure::new(
                        1,
                        "claim needs --guild G or --shard S --shards N",
                    ))
                }
            };
            remote::claim(
                &dir,
                &ctx,
                target,
                std::time::Duration::from_millis(pace_ms),
                &mut out,
            )
        }
        Command::State {
            guild,
            at,
            at_time,
            format,
        } => {
            let guild = GuildId(guild);
            let at_unix_ms = at_time
                .as_deref()
                .map(time::parse_rfc3339)
                .transpose()
                .map_err(|e| Failure::new(1, e))?;
            let mut journal = Journal::open_read_only(&dir, base_config())?;
            warn_findings(&mut journal, guild)?;
            let gs = match (at, at_unix_ms) {
                (Some(seq), _) => journal.state_at(guild, seq)?,
                (None, Some(t)) => journal.state_at_time(guild, t)?,
                (None, None) => journal.state(guild)?.clone(),
            };
            match format {
                StateFormat::Reprise => print_json_line(&mut out, &gs.to_json()),
                StateFormat::Sonora => {
                    let text = reprise::sonora::file_text(
                        &gs,
                        reprise::clock::now_unix_secs(),
                        reprise::sonora::Sections::ALL,
                    );
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
            let text = reprise::sonora::file_text(
                &gs,
                reprise::clock::now_unix_secs(),
                only.unwrap_or_default(),
            );
            match path {
                Some(path) => write_file(&path, text.as_bytes()),
                None => output::print_line(&mut out, &text),
            }
        }
        Command::Snapshot { guild } => {
            journal_exists(&dir)?;
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
            let mut bar: Option<progress::Progress> = None;
            let report = journal.verify_with(&mut |_, total| {
                bar.get_or_insert_with(|| {
                    progress::Progress::new(total, "verify", "guilds", false)
                })
                .inc(1);
            })?;
            for f in &report.findings {
                print_json_line(&mut out, &f.to_json())?;
            }
            let damage = report.findings.iter().filter(|f| f.is_damage()).count();
            bar.unwrap_or_else(|| progress::Progress::new(0, "verify", "guilds", true))
                .finish(&format!(
                    "verified {} guilds, {} files, {} events: {} finding(s), {} damage",
                    report.guilds,
                    report.files,
                    report.events,
                    report.findings.len(),
                    damage
                ));
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
            superseded_max_age,
            superseded_keep,
            dry_run,
        } => {
            journal_exists(&dir)?;
            cleanup::run(
                &dir,
                &cleanup::Args {
                    max_age_days: max_age,
                    keep,
                    guild: guild.map(GuildId),
                    superseded_max_age_days: superseded_max_age,
                    superseded_keep,
                    dry_run,
                },
                &mut out,
            )
        }
        Command::Restore {
            guild,
            to,
            to_time,
            label,
        } => {
            journal_exists(&dir)?;
            let target = restore::Target::from_args(to, to_time.as_deref())?;
            restore::run(&dir, GuildId(guild), target, label.as_deref(), &mut out)
        }
        Command::Checkpoint { label, remove } => {
            journal_exists(&dir)?;
            checkpoints::checkpoint(&dir, &label, remove, &mut out)
        }
        Command::Checkpoints => checkpoints::list(&dir, &mut out),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut public_command(), "reprise", &mut script);
            output::print_line(&mut out, String::from_utf8_lossy(&script).trim_end())
        }
        Command::Rollback {
            label,
            guilds,
            batch,
            pace_ms,
        } => {
            journal_exists(&dir)?;
            checkpoints::rollback(&dir, &label, guilds, batch, pace_ms, &mut out)
        }
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

/// The command line without its hidden commands (the `demo` and `bench` child processes):
/// what the completion scripts offer.
fn public_command() -> clap::Command {
    let full = Cli::command();
    let public = clap::Command::new("reprise")
        .version(env!("CARGO_PKG_VERSION"))
        .about(full.get_about().cloned().unwrap_or_default())
        .args(full.get_arguments().cloned());
    public.subcommands(full.get_subcommands().filter(|c| !c.is_hide_set()).cloned())
}

/// Refuses a command that changes an existing journal (snapshot, cleanup, restore, checkpoint,
/// rollback) on a directory that does not exist: exit 4 naming it, and nothing is created.
fn journal_exists(dir: &std::path::Path) -> Result<(), Failure> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Failure::new(
            4,
            format!(
                "the journal directory {} does not exist (nothing was created; `apply`, \
                 `import` and `claim` start a journal)",
                dir.display()
            ),
        )),
        // Anything else is the open's to report.
        _ => Ok(()),
    }
}

/// Opens `--remote` for a command that needs it.
fn remote_ctx(url: &Option<String>, owner: Option<String>) -> Result<remote::RemoteCtx, Failure> {
    match url {
        Some(url) => remote::RemoteCtx::open(url, owner),
        None => Err(Failure::new(
            1,
            "this command needs --remote URL (or REPRISE_REMOTE)",
        )),
    }
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
    let reader = journal.mode() == reprise::OpenMode::ReadOnly;
    for c in journal.recovery_findings(guild)? {
        if c.kind == reprise::CorruptionKind::TornTail {
            // A reader cuts nothing: at the end of the newest file this is a write a live
            // writer has in progress, or one a crash tore; the events before it (and the
            // commit log's) are read. A writer cuts it off.
            let what = if reader {
                "read up to there, nothing cut"
            } else {
                "cut off by recovery"
            };
            eprintln!(
                "reprise: note: {} ends at byte offset {} in a torn record (a write in progress, \
                 or torn by a crash): {what}",
                c.path.display(),
                c.offset
            );
        } else {
            eprintln!("reprise: warning: {c} (recovery did not need this data)");
        }
    }
    Ok(())
}

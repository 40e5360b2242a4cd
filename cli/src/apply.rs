//! `reprise apply`: stream JSON lines from stdin into a guild, acknowledging each event as soon
//! as it is durable at the chosen level. Events that arrive together share one fsync.

use std::io::{self, BufRead, Read};
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use reprise::{Durability, Event, GuildId, Journal};

use crate::output::{print_line, Out};
use crate::remote::RemoteCtx;
use crate::Failure;

/// Longest accepted input line (a frame payload is at most 16 MiB of bincode; JSON is larger).
const LINE_LEN_MAX: usize = 64 << 20;
/// Most events that share one fsync.
const BATCH_EVENTS_MAX: usize = 1024;
/// How long `apply` with local acknowledgements waits for the store's ownership check before
/// it appends locally only.
const OWNER_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `batched` waits for more input before it syncs.
const BATCH_DELAY_MAX: Duration = Duration::from_millis(2);

enum Input {
    Line {
        number: u64,
        text: String,
    },
    TooLong {
        number: u64,
    },
    /// Not UTF-8: the byte offset in the line of the first invalid byte.
    NotUtf8 {
        number: u64,
        offset: usize,
    },
    Failed(io::Error),
}

/// Reads stdin on its own thread so the writer can see which lines have already arrived.
fn spawn_reader() -> mpsc::Receiver<Input> {
    let (tx, rx) = mpsc::sync_channel(BATCH_EVENTS_MAX * 4);
    thread::spawn(move || {
        let stdin = io::stdin();
        let mut reader = stdin.lock();
        let mut number = 0u64;
        loop {
            number += 1;
            let mut buf = Vec::new();
            let read = reader
                .by_ref()
                .take(LINE_LEN_MAX as u64 + 1)
                .read_until(b'\n', &mut buf);
            let input = match read {
                Ok(0) => return,
                Ok(_) if buf.len() > LINE_LEN_MAX => Input::TooLong { number },
                Ok(_) => match String::from_utf8(buf) {
                    Ok(text) => Input::Line { number, text },
                    Err(e) => Input::NotUtf8 {
                        number,
                        offset: e.utf8_error().valid_up_to(),
                    },
                },
                Err(e) => Input::Failed(e),
            };
            let stop = !matches!(input, Input::Line { .. });
            if tx.send(input).is_err() || stop {
                return;
            }
        }
    });
    rx
}

/// Hands the guild's events to the background shipping. The remote may hold only what the
/// local disk keeps: `none` events are synced first, and buffered frames are flushed to the
/// segments the shipping thread reads.
fn hand_over(
    journal: &mut Journal,
    guild: GuildId,
    durability: Durability,
    ship: &crate::remote::BackgroundShip,
) -> Result<(), Failure> {
    let seq = journal.state(guild)?.seq;
    if seq > ship.handed() {
        if durability == Durability::None {
            journal.sync()?;
        }
        journal.flush()?;
        ship.durable(seq);
    }
    Ok(())
}

pub(crate) fn run(
    dir: &Path,
    config: reprise::Config,
    guild: GuildId,
    durability: Durability,
    remote: Option<&RemoteCtx>,
    remote_acks: bool,
    ship_interval: Duration,
) -> Result<(), Failure> {
    let mut journal = Journal::open(dir, config)?;
    // Recover before reading input: a damaged journal fails here, with nothing consumed.
    journal.state(guild)?;
    // With --remote: a guild the store shows owned by a newer epoch fails here (exit 3), before
    // any input is read. An unreachable store stops only `remote` acknowledgements.
    // A directory that has seen a newer owner appends nothing more, with or without --remote.
    reprise::remote::check_not_fenced(
        guild,
        reprise::remote::Remote::owner_record(&reprise::remote::LocalDir::of(&journal), guild)?
            .as_ref(),
    )?;
    let mut owner = None;
    let mut background = None;
    if let Some(ctx) = remote {
        let local = reprise::remote::LocalDir::of(&journal);
        let found = ctx.block_on(async {
            let check = async {
                let mut writer = ctx.remote.writer(&local).await?;
                let me = ctx
                    .remote
                    .owner(&local, &mut writer, guild, &ctx.owner)
                    .await?;
                Ok::<_, reprise::Error>((writer, me))
            };
            if remote_acks {
                return check.await;
            }
            // Local acknowledgements do not wait long for a store that does not answer.
            tokio::time::timeout(OWNER_CHECK_TIMEOUT, check)
                .await
                .unwrap_or_else(|_| {
                    Err(reprise::remote::no_answer(
                        &ctx.remote,
                        "check ownership at",
                        OWNER_CHECK_TIMEOUT,
                    ))
                })
        });
        match found {
            Ok((writer, me)) if !remote_acks => {
                background = Some(crate::remote::BackgroundShip::start(
                    ctx.remote.clone(),
                    local,
                    writer,
                    me,
                    ship_interval,
                ));
            }
            Ok(found) => owner = Some(found),
            Err(e @ reprise::Error::Remote { .. }) if !remote_acks => {
                eprintln!("reprise: warning: {e}; appending locally only");
            }
            Err(e) => return Err(e.into()),
        }
    }
    let rx = spawn_reader();
    let mut out = Out::stdout();
    let append_durability = match durability {
        Durability::None => Durability::None,
        _ => Durability::BATCHED,
    };
    let mut shipped_at = Instant::now();
    loop {
        let first = match rx.recv_timeout(ship_interval) {
            Ok(first) => first,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // No input for a while: what was not handed over yet (`none` events) still
                // reaches the remote within the ship interval.
                if let Some(b) = &background {
                    b.check()?;
                    hand_over(&mut journal, guild, durability, b)?;
                    shipped_at = Instant::now();
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if let Some(b) = &background {
            // A newer owner was seen: nothing more is appended (exit 3).
            b.check()?;
        }
        let mut batch = vec![first];
        let deadline = Instant::now() + BATCH_DELAY_MAX;
        while batch.len() < BATCH_EVENTS_MAX {
            let next = if matches!(durability, Durability::Batched(_)) {
                rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                    .ok()
            } else {
                rx.try_recv().ok()
            };
            match next {
                Some(input) => batch.push(input),
                None => break,
            }
        }
        let mut acked = Vec::with_capacity(batch.len());
        let mut failure = None;
        for input in batch {
            let (number, text) = match input {
                Input::Line { number, text } => (number, text),
                Input::TooLong { number } => {
                    failure = Some(Failure::new(
                        2,
                        format!("stdin line {number}: longer than {LINE_LEN_MAX} bytes; nothing written for it"),
                    ));
                    break;
                }
                Input::NotUtf8 { number, offset } => {
                    failure = Some(Failure::new(
                        2,
                        format!("stdin line {number}: not UTF-8 (an invalid byte at byte {offset} of the line); nothing written for it"),
                    ));
                    break;
                }
                Input::Failed(e) => {
                    failure = Some(Failure::new(4, format!("reading stdin: {e}")));
                    break;
                }
            };
            // A byte order mark before the first line (Windows editors write one) is not
            // part of the event.
            let text = match number {
                1 => text.strip_prefix('\u{feff}').unwrap_or(&text),
                _ => &text,
            };
            if text.trim().is_empty() {
                continue;
            }
            let event = match Event::from_json(text) {
                Ok(e) => e,
                Err(e) => {
                    failure = Some(Failure::new(
                        2,
                        format!("stdin line {number}: invalid event, nothing written for it: {e}"),
                    ));
                    break;
                }
            };
            match journal.append(guild, &event, append_durability) {
                Ok(seq) => acked.push(seq),
                Err(e) => {
                    let mut f = Failure::from(e);
                    f.message = format!("stdin line {number}: {}", f.message);
                    failure = Some(f);
                    break;
                }
            }
        }
        if durability != Durability::None && !acked.is_empty() {
            // A failed sync (an fsync or a write that failed: the commit log is poisoned)
            // leaves the batch in doubt, as a crash would: the message says which events.
            journal.sync().map_err(|e| {
                failure_naming(e, &acked, guild, |events| {
                    format!("{events} were not acknowledged and may or may not be in the journal after a failed write or fsync (`reprise state --guild {}` shows the last seq it holds: send again only the events after it)", guild.0)
                })
            })?;
        }
        if let (true, Some(ctx), Some((writer, me))) =
            (remote_acks && !acked.is_empty(), remote, owner.as_mut())
        {
            // One object per batch: the acknowledgements wait for the store. When the store
            // fails, the batch is durable here but not acknowledged: the message says so, so
            // that nobody sends those events again (`reprise ship` uploads them).
            ctx.block_on(
                ctx.remote
                    .ship_events(&mut journal, writer, std::slice::from_mut(me)),
            )
            .map_err(|e| {
                failure_naming(e, &acked, guild, |events| {
                    format!("{events} are durable in the local journal but not in the remote store, so they were not acknowledged (do not send them again: `reprise ship` uploads them)")
                })
            })?;
            me.check()?;
        }
        if let (Some(b), false) = (&background, acked.is_empty()) {
            // Durable events at once (the remote lags by at most the thread's interval);
            // `none` events once per interval, each time with a sync.
            if durability != Durability::None || shipped_at.elapsed() >= ship_interval {
                hand_over(&mut journal, guild, durability, b)?;
                shipped_at = Instant::now();
            }
        }
        for seq in acked {
            print_line(&mut out, &format!("{{\"seq\": {seq}}}"))?;
        }
        if let Some(f) = failure {
            if let Some(b) = background {
                b.finish();
            }
            return Err(f);
        }
    }
    let last = journal.state(guild)?.seq;
    journal.close()?;
    if let Some(b) = background {
        // Everything is durable now: the last round ships what is left (bounded).
        b.durable(last);
        b.finish();
    }
    Ok(())
}

/// `e` as a failure whose message goes on to say what it means for the batch `acked` of
/// `guild` (not empty): `what` is given `events A..=B of guild G`.
fn failure_naming(
    e: reprise::Error,
    acked: &[reprise::Seq],
    guild: GuildId,
    what: impl FnOnce(&str) -> String,
) -> Failure {
    let mut f = Failure::from(e);
    let (first, last) = (acked[0], acked[acked.len() - 1]);
    let events = format!("events {first}..={last} of guild {}", guild.0);
    f.message = format!("{}; {}", f.message, what(&events));
    f
}

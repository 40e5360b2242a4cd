//! `reprise import FILE...`: Sonora snapshot files become the state of their guilds.
//!
//! Output: one JSON line per file, in the order given:
//! `{"file": F, "guild": G, "events": N, "first_seq": S|null, "seq": S}` (imported), or with
//! `--check` `{"file": F, "guild": G, "valid": true, "events": N}` /
//! `{"file": F, "valid": false, "error": "...", "path": "data.queue..."|null}`.
//! Every file is checked before anything is written; one invalid file (a checksum mismatch, a
//! schema or range error, named by its JSON path) makes the command exit 2 with nothing
//! written for any file.

use std::io::Read;
use std::path::{Path, PathBuf};

use reprise::import::{self, ImportError, Imported};
use reprise::session::{State, HISTORY_MAX_DEFAULT};
use reprise::Journal;
use serde_json::json;

use crate::output::{print_json_line, Out};
use crate::progress::Progress;
use crate::Failure;

/// The largest Sonora file read (a 100,000-track queue of long tracks stays well below).
const FILE_LEN_MAX: u64 = 256 << 20;

/// Reads one input file, bounded, as UTF-8.
fn read(path: &Path) -> Result<String, Failure> {
    let name = path.display();
    let file = std::fs::File::open(path).map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            1
        } else {
            4
        };
        Failure::new(code, format!("{name}: cannot open: {e}"))
    })?;
    let mut bytes = Vec::new();
    file.take(FILE_LEN_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::new(4, format!("{name}: cannot read: {e}")))?;
    if bytes.len() as u64 > FILE_LEN_MAX {
        return Err(Failure::new(
            2,
            format!("{name}: larger than {FILE_LEN_MAX} bytes; not a Sonora snapshot"),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        Failure::new(
            2,
            format!(
                "{name}: not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// The JSON path an error names, if any.
fn error_path(error: &ImportError) -> Option<String> {
    match error {
        ImportError::Sonora { source, .. } => source.path().map(str::to_owned),
        _ => None,
    }
}

/// Runs `import` (or `import --check`).
pub(crate) fn run(
    dir: &Path,
    files: &[PathBuf],
    check: bool,
    out: &mut Out,
) -> Result<(), Failure> {
    let bar = Progress::new(files.len() as u64, "import: check", "files", false);
    let mut inputs = Vec::with_capacity(files.len());
    for path in files {
        inputs.push((path.display().to_string(), read(path)?));
    }
    // Every file on its own first (no journal needed), so that every bad file is reported.
    let empty = State::new(HISTORY_MAX_DEFAULT);
    let mut invalid = 0;
    for (name, text) in &inputs {
        bar.inc(1);
        match import::prepare(name, text, &empty) {
            Ok(plan) if check => print_json_line(
                out,
                &json!({
                    "file": name,
                    "guild": plan.sonora.guild_id,
                    "valid": true,
                    "events": plan.events.len(),
                }),
            )?,
            Ok(_) => {}
            Err(error) => {
                invalid += 1;
                eprintln!("reprise: error: {error}");
                if check {
                    print_json_line(
                        out,
                        &json!({
                            "file": name,
                            "valid": false,
                            "error": error.to_string(),
                            "path": error_path(&error),
                        }),
                    )?;
                }
            }
        }
    }
    if invalid > 0 {
        let what = if check { "" } else { "; nothing was imported" };
        return Err(Failure::new(
            2,
            format!("{invalid} of {} file(s) invalid{what}", inputs.len()),
        ));
    }
    if check {
        bar.finish(&format!("checked {} file(s): all valid", inputs.len()));
        return Ok(());
    }
    let mut journal = Journal::open(dir, crate::base_config())?;
    let imported = import::import_sonora(&mut journal, &inputs).map_err(|error| {
        // Files imported before a failure (a full disk) are reported as on success.
        if let ImportError::Interrupted { imported, .. } = &error {
            for done in imported {
                if let Err(f) = print_imported(out, done) {
                    return f;
                }
            }
        }
        let code = error.journal_error().map_or(2, crate::exit_code);
        let written = if error.is_invalid_data() {
            "; nothing was imported"
        } else {
            ""
        };
        Failure::new(code, format!("{error}{written}"))
    })?;
    // Durable now (one sync): reported before the close, which may still fail (a full disk
    // when the segments are written out; the events stay in the commit log).
    for done in &imported {
        print_imported(out, done)?;
    }
    journal.close()?;
    bar.finish(&format!(
        "imported {} file(s) into {} guild(s), {} event(s)",
        imported.len(),
        imported
            .iter()
            .map(|d| d.guild)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        imported.iter().map(|d| d.events).sum::<u64>()
    ));
    Ok(())
}

/// The JSON line of one imported file.
fn print_imported(out: &mut Out, done: &Imported) -> Result<(), Failure> {
    print_json_line(
        out,
        &json!({
            "file": done.file,
            "guild": done.guild.0,
            "events": done.events,
            "first_seq": done.first_seq,
            "seq": done.seq,
        }),
    )
}

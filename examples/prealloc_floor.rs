//! Side by side on this disk: how fast is a durable 128-byte record, appended to a growing file
//! and written inside a file extended ahead of the writes in each of the ways the commit log
//! could extend it (`set_len`, `fallocate`, zeros written and synced)? Each mode writes
//! `REPRISE_PREALLOC_RECORDS` (default 2,000) records sequentially, each followed by
//! `fdatasync`, after 200 untimed ones; the modes run in turn, `REPRISE_PREALLOC_ROUNDS`
//! (default 2) times, so a burst of load from other processes hits every mode alike.
//!
//! ```text
//! cargo run --release --example prealloc_floor [DIR]
//! ```
//!
//! DESIGN.md ("The cost of an acknowledged append") records what it printed and the choice
//! it led to.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

const RECORD: usize = 128;
const EXTENT: u64 = 64 << 20;
const WARMUP: usize = 200;

#[derive(Clone, Copy, Debug)]
enum Mode {
    /// A growing file (every fdatasync also commits the new size).
    Append,
    /// `set_len(64 MiB)` then fsync: a sparse file; each new block is allocated on write.
    SetLen,
    /// `fallocate(64 MiB)` then fsync: blocks allocated as unwritten extents, converted on write.
    Fallocate,
    /// 64 MiB of zeros written and fsynced: every block allocated and written.
    Zeroed,
}

fn open(path: &Path, mode: Mode) -> std::io::Result<File> {
    let mut file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(path)?;
    match mode {
        Mode::Append => {}
        Mode::SetLen => file.set_len(EXTENT)?,
        Mode::Fallocate => {
            rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, EXTENT)?
        }
        Mode::Zeroed => {
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..EXTENT / (1 << 20) {
                file.write_all(&zeros)?;
            }
            file.seek(SeekFrom::Start(0))?;
        }
    }
    file.sync_all()?;
    Ok(file)
}

fn run(dir: &Path, mode: Mode, records: usize, round: usize) -> std::io::Result<(f64, f64, f64)> {
    let path = dir.join(format!("{mode:?}-{round}.bin"));
    let mut file = open(&path, mode)?;
    let record = [0x5Au8; RECORD];
    let write = |file: &mut File| -> std::io::Result<()> {
        file.write_all(&record)?;
        file.sync_data()
    };
    for _ in 0..WARMUP {
        write(&mut file)?;
    }
    let mut samples = Vec::with_capacity(records);
    let start = Instant::now();
    for _ in 0..records {
        let t = Instant::now();
        write(&mut file)?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let ops = records as f64 / start.elapsed().as_secs_f64();
    samples.sort_by(f64::total_cmp);
    let p = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    drop(file);
    std::fs::remove_file(&path)?;
    Ok((ops, p(0.5), p(0.99)))
}

fn main() -> std::io::Result<()> {
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let records = env("REPRISE_PREALLOC_RECORDS", 2_000);
    let rounds = env("REPRISE_PREALLOC_ROUNDS", 2);
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map_or_else(std::env::temp_dir, PathBuf::from)
        .join(format!("prealloc-floor-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    println!(
        "{records} records of {RECORD} bytes + fdatasync each, in {}",
        dir.display()
    );
    for round in 0..rounds {
        for mode in [Mode::Append, Mode::SetLen, Mode::Fallocate, Mode::Zeroed] {
            let (ops, p50, p99) = run(&dir, mode, records, round)?;
            println!(
                "round {round} {:<10} {ops:>8.0} ops/s  p50 {p50:>7.1} us  p99 {p99:>8.1} us",
                format!("{mode:?}")
            );
        }
    }
    std::fs::remove_dir_all(&dir)
}

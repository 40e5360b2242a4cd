//! The measurement behind the group-commit design (DESIGN.md, "Group commit"): what it costs
//! to make one 128-byte append in each of 64 files durable, against one file holding all 64.
//!
//! - `64 files, fdatasync each`: durability from per-guild segments;
//! - `64 files, syncfs`: one `syncfs(2)` of the file system (Linux);
//! - `1 shared file, 64 records, one fdatasync`: a shared commit log (what reprise does);
//! - `1 file, 1 record, fdatasync`: the floor, for scale.

use std::fs::{File, OpenOptions};
use std::io::Write;

use criterion::{criterion_group, criterion_main, Criterion};

const FILES: usize = 64;

fn open(dir: &std::path::Path, name: &str) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .unwrap()
}

fn group_commit(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(".").unwrap();
    let mut files: Vec<File> = (0..FILES)
        .map(|i| open(dir.path(), &format!("g{i}")))
        .collect();
    let mut shared = open(dir.path(), "shared");
    let record = [7u8; 128];
    let mut group = c.benchmark_group("make 64 guild appends durable");
    group.sample_size(20);
    group.bench_function("1 file, 1 record, fdatasync (floor)", |b| {
        b.iter(|| {
            shared.write_all(&record).unwrap();
            shared.sync_data().unwrap();
        })
    });
    group.bench_function("64 files, fdatasync each", |b| {
        b.iter(|| {
            for f in files.iter_mut() {
                f.write_all(&record).unwrap();
            }
            for f in files.iter_mut() {
                f.sync_data().unwrap();
            }
        })
    });
    #[cfg(target_os = "linux")]
    group.bench_function("64 files, one syncfs", |b| {
        let root = File::open(dir.path()).unwrap();
        b.iter(|| {
            for f in files.iter_mut() {
                f.write_all(&record).unwrap();
            }
            rustix::fs::syncfs(&root).unwrap();
        })
    });
    group.bench_function("1 shared file, 64 records, one fdatasync", |b| {
        b.iter(|| {
            for _ in 0..FILES {
                shared.write_all(&record).unwrap();
            }
            shared.sync_data().unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, group_commit);
criterion_main!(benches);

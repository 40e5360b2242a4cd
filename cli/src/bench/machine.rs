//! The one-line description of the machine a `reprise bench` report names: CPU model, cores,
//! kernel, and the file system of `--dir` (read from `/proc` and `df`).

use std::fs;
use std::path::Path;

/// The first line of `text` starting with `key`, after its `:` (as in `/proc/cpuinfo`).
fn proc_field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find(|line| line.starts_with(key))
        .and_then(|line| line.split_once(':'))
        .map(|(_, value)| value.trim().to_owned())
}

/// The file system type and device of `dir`, from `df -PT`.
fn filesystem(dir: &Path) -> Option<(String, String)> {
    let output = std::process::Command::new("df")
        .arg("-PT")
        .arg(dir)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().nth(1)?;
    let mut fields = line.split_whitespace();
    let device = fields.next()?.to_owned();
    let kind = fields.next()?.to_owned();
    Some((kind, device))
}

/// One line describing the machine: CPU model, cores, kernel, and the file system of `dir`.
pub(super) fn machine_description(dir: &Path) -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = proc_field(&cpuinfo, "model name").unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    let fs_text = filesystem(dir).map_or_else(
        || "unknown file system".to_owned(),
        |(kind, device)| format!("{kind} on {device}"),
    );
    format!(
        "{cpu}, {cores} cores, Linux {kernel}, {fs_text} ({})",
        dir.display()
    )
}

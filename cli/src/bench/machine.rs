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

/// Whether the ext4 file system on `device` runs without a journal: `Some(true)` when the
/// kernel lists it in `ext4_names` (`/proc/fs/ext4`, by kernel device name) but no journal
/// of it in `jbd2_names` (`/proc/fs/jbd2`, `<name>-<inode>`); `None` when `kind` is not
/// ext4 or the device is not listed under its name (a mapper path, no `/proc`). The bench
/// says so in its machine line: without a journal an `fdatasync` commits no metadata, and
/// ext4 will not reuse an inode freed in the last minutes, which a new guild's `mkdir` pays
/// for (DESIGN.md, "Why consecutive bench runs give a new guild a higher ratio").
fn ext4_without_journal(
    kind: &str,
    device: &str,
    ext4_names: &[String],
    jbd2_names: &[String],
) -> Option<bool> {
    if kind != "ext4" {
        return None;
    }
    let name = Path::new(device).file_name()?.to_str()?;
    if !ext4_names.iter().any(|n| n == name) {
        return None;
    }
    let journal = jbd2_names
        .iter()
        .any(|n| n.rsplit_once('-').is_some_and(|(dev, _)| dev == name));
    Some(!journal)
}

/// The entry names of a `/proc` directory (empty when it cannot be read).
fn proc_names(dir: &str) -> Vec<String> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
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
        |(kind, device)| {
            let journal = match ext4_without_journal(
                &kind,
                &device,
                &proc_names("/proc/fs/ext4"),
                &proc_names("/proc/fs/jbd2"),
            ) {
                Some(true) => " without a journal",
                Some(false) => " with a journal",
                None => "",
            };
            format!("{kind}{journal} on {device}")
        },
    );
    format!(
        "{cpu}, {cores} cores, Linux {kernel}, {fs_text} ({})",
        dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::ext4_without_journal;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn an_ext4_journal_is_found_by_the_kernel_device_name() {
        let ext4 = names(&["vda", "loop0"]);
        let jbd2 = names(&["loop0-8"]);
        assert_eq!(
            ext4_without_journal("ext4", "/dev/vda", &ext4, &jbd2),
            Some(true)
        );
        assert_eq!(
            ext4_without_journal("ext4", "/dev/loop0", &ext4, &jbd2),
            Some(false)
        );
        // Not listed under that name (a mapper path): unknown, not "without".
        assert_eq!(
            ext4_without_journal("ext4", "/dev/mapper/root", &ext4, &jbd2),
            None
        );
        assert_eq!(ext4_without_journal("xfs", "/dev/vda", &ext4, &jbd2), None);
        // A device whose name is a prefix of another's journal entry.
        let jbd2 = names(&["vda1-8"]);
        assert_eq!(
            ext4_without_journal("ext4", "/dev/vda", &ext4, &jbd2),
            Some(true)
        );
    }
}

//! Writes a `recover_dir` input (a crash artifact, a seed) out as a journal directory, so it can
//! be examined with the CLI (`reprise verify --dir DIR`, `reprise inspect --dir DIR`, ...).
//!
//! ```sh
//! cd fuzz && cargo run --example unpack_image -- regressions/recover_dir/<file> /tmp/image
//! ```
//!
//! Checksums are fixed exactly as the fuzz target fixes them (flag bit 0). Prints each file.

use reprise::format::{segment, snapshot};
use reprise_fuzz::{DirImage, FileKind, GUILD};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, out] = args.as_slice() else {
        eprintln!("usage: unpack_image INPUT OUT_DIR");
        std::process::exit(1);
    };
    let data = std::fs::read(input).expect("read the input");
    let image = DirImage::parse(&data);
    let dir = std::path::Path::new(out)
        .join("guilds")
        .join(GUILD.to_string());
    std::fs::create_dir_all(&dir).expect("create the guild directory");
    println!("flags {:#04x}", image.flags);
    for f in &image.files {
        std::fs::write(dir.join(f.name()), &f.bytes).expect("write a file");
        let what = match f.kind() {
            FileKind::Segment => match segment::scan(&f.bytes, true) {
                Ok(s) => format!(
                    "header {:?}, frames {}, last_seq {}, valid_len {}, end {:?}",
                    s.header, s.frame_count, s.last_seq, s.valid_len, s.end
                ),
                Err(e) => format!("bad header {e:?}"),
            },
            FileKind::Snapshot => match snapshot::decode(&f.bytes, None) {
                Ok((h, _)) => format!("{h:?}"),
                Err(e) => format!("bad snapshot {e:?}"),
            },
            FileKind::Temp | FileKind::Unknown => String::new(),
        };
        println!("{} ({} bytes) {what}", f.name(), f.bytes.len());
    }
}

//! JSON shapes printed by the CLI, and a stdout writer that treats a closed pipe as success.

use std::io::{self, BufWriter, Write};

use reprise::{GuildId, GuildInfo, LoggedEvent};
use serde_json::{json, Map, Value};

use crate::Failure;

/// Buffered stdout.
pub(crate) struct Out {
    inner: BufWriter<io::Stdout>,
}

impl Out {
    pub(crate) fn stdout() -> Out {
        Out {
            inner: BufWriter::new(io::stdout()),
        }
    }
}

fn broken_pipe_ok(e: io::Error) -> Failure {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Failure::new(0, "")
    } else {
        Failure::from(e)
    }
}

/// Writes one line of text and flushes (so a reader sees it at once).
pub(crate) fn print_line(out: &mut Out, line: &str) -> Result<(), Failure> {
    out.inner
        .write_all(line.as_bytes())
        .and_then(|()| out.inner.write_all(b"\n"))
        .and_then(|()| out.inner.flush())
        .map_err(broken_pipe_ok)
}

/// Writes one compact JSON value on its own line and flushes.
pub(crate) fn print_json_line(out: &mut Out, value: &Value) -> Result<(), Failure> {
    print_line(out, &value.to_string())
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(m) => m,
        other => {
            let mut m = Map::new();
            m.insert("value".into(), other);
            m
        }
    }
}

/// `{"seq": N, "type": ..., ...fields}`: the event's JSON form with its seq.
pub(crate) fn logged_event_json(e: &LoggedEvent) -> Value {
    let mut m = Map::new();
    m.insert("seq".into(), json!(e.seq));
    m.extend(object(
        serde_json::to_value(&e.event).unwrap_or(Value::Null),
    ));
    Value::Object(m)
}

/// One guild of `inspect`.
pub(crate) fn guild_info_json(guild: GuildId, info: &GuildInfo) -> Value {
    let segments: Vec<Value> = info
        .segments
        .iter()
        .map(|s| {
            json!({
                "file": s.path.display().to_string(),
                "bytes": s.bytes,
                "first_seq": s.first_seq,
                "last_seq": s.last_seq,
                "active": s.active,
            })
        })
        .collect();
    let snapshots: Vec<Value> = info
        .snapshots
        .iter()
        .map(|s| json!({ "file": s.path.display().to_string(), "bytes": s.bytes, "seq": s.first_seq }))
        .collect();
    let bytes: u64 = info
        .segments
        .iter()
        .chain(&info.snapshots)
        .map(|f| f.bytes)
        .sum();
    let seq_last = info
        .segments
        .iter()
        .map(|s| s.last_seq)
        .chain(info.snapshots.iter().map(|s| s.last_seq))
        .max()
        .unwrap_or(0);
    let seq_first_held = info.segments.first().map(|s| s.first_seq);
    json!({
        "guild": guild.0,
        "seq_last": seq_last,
        "log_first_seq": seq_first_held,
        "bytes": bytes,
        "segments": segments,
        "snapshots": snapshots,
    })
}

//! The remote protocol against a real S3-compatible server: moto's, started on 127.0.0.1 by
//! this test and stopped when it ends. Through the CLI, separate directories standing for
//! separate machines. Skipped (with a message) when `moto_server` is not installed: set
//! `REPRISE_MOTO_SERVER` to its path or put it on PATH (`pip install 'moto[server]'`;
//! `.ci/run` installs it into a virtual environment).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reprise::session::{apply, State, Workload, HISTORY_MAX_DEFAULT};

use serde_json::Value;

const GUILD: &str = "613425648685547541";
const BUCKET: &str = "reprise-test";

fn moto_server() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REPRISE_MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("moto_server"))
        .find(|p| p.is_file())
}

/// The server process; killed (and reaped) when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(binary: &Path) -> Server {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(binary)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child, port };
    // Readiness: the port accepts connections (bounded).
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Create the bucket (moto does not check signatures).
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "PUT /{BUCKET} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server
}

/// The `reprise` command for `dir`, pointed at `server`.
fn command(server: &Server, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reprise"));
    cmd.arg("--dir")
        .arg(dir)
        .args(["--remote", &format!("s3://{BUCKET}/fleet")])
        .args(args)
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", server.port),
        )
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_ALLOW_HTTP", "true")
        .env_remove("REPRISE_REMOTE");
    cmd
}

fn run(server: &Server, dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = command(server, dir, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        let _ = input.write_all(text.as_bytes());
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn ship_claim_and_fencing_against_moto() {
    let Some(binary) = moto_server() else {
        eprintln!(
            "SKIPPED remote_s3: moto_server not found (pip install 'moto[server]', or set REPRISE_MOTO_SERVER)"
        );
        return;
    };
    let server = start(&binary);
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let input: String = (0..60)
        .map(|i| {
            format!(
                "{{\"type\": \"volume_set\", \"volume\": {}}}\n",
                i * 7 % 1000
            )
        })
        .collect();
    let acks = ok(&run(
        &server,
        &a,
        &["apply", "--guild", GUILD, "--durability", "remote"],
        Some(&input),
    ));
    assert_eq!(acks.lines().count(), 60);
    ok(&run(&server, &a, &["snapshot", "--guild", GUILD], None));
    let shipped: Value = serde_json::from_str(&ok(&run(&server, &a, &["ship"], None))).unwrap();
    assert_eq!(shipped["objects"], 1, "the snapshot: {shipped}");
    let claimed: Value = serde_json::from_str(&ok(&run(
        &server,
        &b,
        &["claim", "--guild", GUILD, "--owner", "b"],
        None,
    )))
    .unwrap();
    assert_eq!(
        (claimed["epoch"].as_u64(), claimed["seq"].as_u64()),
        (Some(2), Some(60))
    );
    let state = |dir: &Path| ok(&run(&server, dir, &["state", "--guild", GUILD], None));
    assert_eq!(state(&a), state(&b));
    let more = "{\"type\": \"paused_set\", \"paused\": true}\n";
    let out = run(&server, &a, &["apply", "--guild", GUILD], Some(more));
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ok(&run(
        &server,
        &b,
        &["apply", "--guild", GUILD, "--durability", "remote"],
        Some(more),
    ));
    assert_eq!(out.trim(), "{\"seq\": 61}");
    drop(server);
}

#[test]
fn moto_honours_create_if_absent() {
    use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions};
    let Some(binary) = moto_server() else {
        eprintln!("SKIPPED remote_s3: moto_server not found");
        return;
    };
    let server = start(&binary);
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_endpoint(format!("http://127.0.0.1:{}", server.port))
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_allow_http(true)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let key = object_store::path::Path::from("x/once");
        let create = || PutOptions::from(PutMode::Create);
        store
            .put_opts(&key, b"a".to_vec().into(), create())
            .await
            .unwrap();
        let again = store.put_opts(&key, b"b".to_vec().into(), create()).await;
        assert!(
            matches!(again, Err(object_store::Error::AlreadyExists { .. })),
            "{again:?}"
        );
        let got = store.get(&key).await.unwrap().bytes().await.unwrap();
        assert_eq!(&got[..], b"a");
    });
}

/// `n` events of a bot-like workload (seeded), as JSON lines.
fn events(seed: u64, n: usize) -> Vec<String> {
    let mut w = Workload::new(seed);
    let mut state = State::new(HISTORY_MAX_DEFAULT);
    (0..n)
        .map(|_| {
            let e = w.next_event(&state);
            apply(&mut state, &e);
            format!("{}\n", e.to_json())
        })
        .collect()
}

fn seq_of(line: &str) -> u64 {
    serde_json::from_str::<Value>(line).unwrap()["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("not a seq line: {line}"))
}

/// Sends SIGSTOP or SIGCONT to the server: a stopped server accepts connections (the kernel
/// does) but answers nothing, as a hung or paused store does; continued, it has every object.
fn signal(server: &Server, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig}");
}

/// Bound on one acknowledgement of a local (`always`) append. Well below the store client's
/// 30 s request timeout, so an append that waited on the stopped store would fail here.
const ACK_WAIT_MAX: Duration = Duration::from_secs(10);

/// Contract §5: while the store is unreachable, `always` appends go on locally and `reprise
/// ship` uploads them later. The server stops answering in the middle of a running `apply
/// --durability always`; every later event is still acknowledged promptly (the background
/// shipping fails, warns and retries) and the process exits 0; once the server is back,
/// `ship` uploads what the store missed, and a claim on another machine recovers every
/// acknowledged event.
#[test]
fn server_stopped_during_apply_always_then_ship_resumes() {
    let Some(binary) = moto_server() else {
        eprintln!("SKIPPED remote_s3: moto_server not found");
        return;
    };
    let started = Instant::now();
    let server = start(&binary);
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let input = events(7, 90);

    // Before the outage: events 1..=30 acknowledged and shipped by `apply` itself (its last
    // round at exit), so `ship` finds nothing to upload.
    let out = run(
        &server,
        &a,
        &["apply", "--guild", GUILD, "--durability", "always"],
        Some(&input[..30].concat()),
    );
    let acks: Vec<u64> = ok(&out).lines().map(seq_of).collect();
    assert_eq!(acks, (1..=30).collect::<Vec<_>>());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shipped: Value = serde_json::from_str(&ok(&run(&server, &a, &["ship"], None))).unwrap();
    assert_eq!(shipped["objects"].as_u64(), Some(0), "{shipped}");

    // One long-running `apply --durability always`, fed through a pipe.
    let mut child = command(
        &server,
        &a,
        &["apply", "--guild", GUILD, "--durability", "always"],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, acks) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in stdout.lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    // Writes one event and waits (bounded) for its acknowledgement; returns how long it took.
    let mut append = |event: &str, expected: u64| {
        let sent = Instant::now();
        stdin.write_all(event.as_bytes()).unwrap();
        stdin.flush().unwrap();
        let line = acks
            .recv_timeout(ACK_WAIT_MAX)
            .unwrap_or_else(|e| panic!("no ack for event {expected} within {ACK_WAIT_MAX:?}: {e}"));
        assert_eq!(seq_of(&line), expected);
        sent.elapsed()
    };
    // Server up: events 31..=45.
    for (i, event) in input[30..45].iter().enumerate() {
        append(event, 31 + i as u64);
    }

    // The server stops answering while the process runs; acknowledgements go on: 46..=90.
    signal(&server, "-STOP");
    let mut slowest = Duration::ZERO;
    for (i, event) in input[45..].iter().enumerate() {
        slowest = slowest.max(append(event, 46 + i as u64));
    }
    drop(stdin);
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "exit {:?}: {stderr}", status.code());
    // The background shipping says that it could not reach the store, and nothing else.
    assert!(
        stderr
            .lines()
            .all(|l| l.starts_with("reprise: warning: shipping failed")),
        "{stderr}"
    );
    eprintln!("slowest ack while the server was stopped: {slowest:?}");

    // The server comes back with its objects: `ship` uploads what it missed, once. (The
    // requests `apply` sent to the stopped server and gave up on may still land when it
    // continues, as an answer lost on the network would: then there is less to upload.)
    signal(&server, "-CONT");
    let shipped: Value = serde_json::from_str(&ok(&run(&server, &a, &["ship"], None))).unwrap();
    assert!(shipped["objects"].as_u64().is_some(), "{shipped}");
    let again: Value = serde_json::from_str(&ok(&run(&server, &a, &["ship"], None))).unwrap();
    assert_eq!(
        (again["objects"].as_u64(), again["bytes"].as_u64()),
        (Some(0), Some(0)),
        "{again}"
    );

    // Another machine claims the guild from the store alone: every acknowledged event, the
    // ones acknowledged while the server was stopped included.
    let claimed: Value = serde_json::from_str(&ok(&run(
        &server,
        &b,
        &["claim", "--guild", GUILD, "--owner", "b"],
        None,
    )))
    .unwrap();
    assert_eq!(
        (claimed["epoch"].as_u64(), claimed["seq"].as_u64()),
        (Some(2), Some(90)),
        "{claimed}"
    );
    let state = |dir: &Path| -> Value {
        serde_json::from_str(&ok(&run(&server, dir, &["state", "--guild", GUILD], None))).unwrap()
    };
    let (sa, sb) = (state(&a), state(&b));
    assert_eq!(sa, sb);
    assert_eq!(sb["seq"].as_u64(), Some(90), "{sb}");
    drop(server);
    eprintln!(
        "server_stopped_during_apply_always_then_ship_resumes: {:?}",
        started.elapsed()
    );
}

/// Contract §5: `reprise bench --remote URL` adds `s3 PUT floor`, `reprise remote 64 guilds`
/// and `claim` after the nine local rows, measured against the store, and leaves no object
/// behind (the run works under its own key prefix and deletes it).
#[test]
fn bench_quick_with_remote_rows_against_moto() {
    use object_store::ObjectStore;
    let Some(binary) = moto_server() else {
        eprintln!("SKIPPED remote_s3: moto_server not found");
        return;
    };
    let started = Instant::now();
    let server = start(&binary);
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&server, tmp.path(), &["bench", "--quick", "--json"], None);
    let report: Value = serde_json::from_str(&ok(&out)).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names[9..],
        ["s3 PUT floor", "reprise remote 64 guilds", "claim"],
        "{names:?}"
    );
    let row = |name: &str| rows.iter().find(|r| r["name"] == name).unwrap();
    for name in ["s3 PUT floor", "reprise remote 64 guilds", "claim"] {
        let r = row(name);
        assert!(r["ops_per_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["p50_us"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["samples"].as_u64().unwrap() > 0, "{r}");
    }
    let remote = row("reprise remote 64 guilds");
    assert_eq!(remote["guilds"], 64, "{remote}");
    assert_eq!(
        remote["ratio_baseline"], "reprise remote 64 guilds",
        "{remote}"
    );
    assert!(remote["ratio_to_floor"].as_f64().unwrap() > 0.0, "{remote}");
    // Group commit to the store: fewer PUTs than events.
    let puts = remote["puts"].as_u64().unwrap();
    assert!(puts > 0 && puts < 64 * 32, "{remote}");
    let claim = row("claim");
    assert_eq!(claim["guilds"], 5, "{claim}");
    assert!(claim["queue_tracks"].as_u64().unwrap() >= 1_000, "{claim}");
    // The local rows are still compared with the local floor.
    assert_eq!(
        row("reprise durable 64 guilds")["ratio_baseline"],
        "reprise durable 1 guild"
    );

    // Nothing left under the run's prefix (nor anywhere under the URL's prefix).
    let url = report["remote"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("s3://{BUCKET}/fleet/bench-")),
        "{url}"
    );
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_endpoint(format!("http://127.0.0.1:{}", server.port))
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_allow_http(true)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let left: Vec<_> = rt.block_on(async {
        use futures_util::TryStreamExt;
        store
            .list(Some(&object_store::path::Path::from("fleet")))
            .try_collect()
            .await
            .unwrap()
    });
    assert!(
        left.is_empty(),
        "{} objects left: {:?}",
        left.len(),
        left.first()
    );
    // And nothing left locally.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    drop(server);
    eprintln!(
        "bench_quick_with_remote_rows_against_moto: {:?}",
        started.elapsed()
    );
}

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

mod support;

const GUILD: &str = "613425648685547541";
const BUCKET: &str = "reprise-test";
const AUTHORIZATION: &str = "Authorization: AWS4-HMAC-SHA256 \
    Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";

fn moto_server() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REPRISE_MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("moto_server"))
        .find(|p| p.is_file())
}

/// A moto server of the test's own, started; `None` (with a message) when moto is missing.
fn moto() -> Option<Server> {
    let Some(binary) = moto_server() else {
        eprintln!(
            "SKIPPED remote_s3: moto_server not found (pip install 'moto[server]', or set REPRISE_MOTO_SERVER)"
        );
        return None;
    };
    Some(start(&binary))
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
    // One start at a time: the port is picked free and released before the server binds it;
    // while a start holds this lock no other test of this binary can be handed the same port.
    static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _starting = STARTING.lock().unwrap_or_else(|e| e.into_inner());
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
    let mut server = Server { child, port };
    // Readiness: the bucket is created. Under load the server can accept a connection before
    // it answers (a reset), and a connect to a port nobody listens on yet can even succeed as a
    // TCP self-connect: retry the whole request, bounded, and fail if the server exits.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!("moto_server exited before it was ready: {status}");
        }
        match try_http(&server, "PUT", &format!("/{BUCKET}"), b"") {
            Ok((200, _)) => break,
            Ok((status, body)) if Instant::now() >= deadline => panic!(
                "moto_server answered {status} to the bucket's creation: {}",
                String::from_utf8_lossy(&body)
            ),
            Err(e) if Instant::now() >= deadline => panic!("moto_server did not start: {e}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    server
}

/// One plain HTTP request to the server, as a client of the store other than `reprise`: the
/// status and the body. Moto does not check signatures, but answers 403 to a GET of an object
/// without any: the request carries a made-up one.
fn http(server: &Server, method: &str, target: &str, body: &[u8]) -> (u16, Vec<u8>) {
    try_http(server, method, target, body)
        .unwrap_or_else(|e| panic!("{method} {target} to moto_server: {e}"))
}

/// [`http`], with the transport's failures returned.
fn try_http(
    server: &Server,
    method: &str,
    target: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let port = server.port;
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    if s.local_addr()? == s.peer_addr()? {
        return Err(std::io::Error::other(
            "a TCP self-connect: nothing listens yet",
        ));
    }
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n{AUTHORIZATION}\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(std::io::Error::other("not an HTTP answer"));
    };
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    assert!(!head.contains("transfer-encoding: chunked"), "{head}");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    Ok((status, answer[end + 4..].to_vec()))
}

/// `object_store`'s S3 client of the bucket on `server` (as a tool other than `reprise`
/// would use it), with a runtime to drive it.
fn s3_client(server: &Server) -> (object_store::aws::AmazonS3, tokio::runtime::Runtime) {
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
    (store, rt)
}

/// The keys of the bucket under `prefix`, listed through plain HTTP.
fn keys(server: &Server, prefix: &str) -> Vec<String> {
    let target = format!("/{BUCKET}?list-type=2&prefix={prefix}");
    let (status, body) = http(server, "GET", &target, b"");
    let xml = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{xml}");
    assert!(!xml.contains("<IsTruncated>true"), "{xml}");
    xml.split("<Key>")
        .skip(1)
        .map(|k| k.split("</Key>").next().unwrap().to_string())
        .collect()
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
    support::output(command(server, dir, args), stdin)
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

/// `claim --guild GUILD --owner owner` on `dir`, successful: its JSON line.
fn claim(server: &Server, dir: &Path, owner: &str) -> Value {
    let args = ["claim", "--guild", GUILD, "--owner", owner];
    support::stdout_json(&run(server, dir, &args, None))
}

/// `state --guild GUILD` of `dir`.
fn state(server: &Server, dir: &Path) -> Value {
    support::stdout_json(&run(server, dir, &["state", "--guild", GUILD], None))
}

#[test]
fn ship_claim_and_fencing_against_moto() {
    let Some(server) = moto() else { return };
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
    let shipped = support::stdout_json(&run(&server, &a, &["ship"], None));
    assert_eq!(shipped["objects"], 1, "the snapshot: {shipped}");
    let claimed = claim(&server, &b, "b");
    assert_eq!(
        (claimed["epoch"].as_u64(), claimed["seq"].as_u64()),
        (Some(2), Some(60))
    );
    assert_eq!(state(&server, &a), state(&server, &b));
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
    let Some(server) = moto() else { return };
    let (store, rt) = s3_client(&server);
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
    let started = Instant::now();
    let Some(server) = moto() else { return };
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
    let shipped = support::stdout_json(&run(&server, &a, &["ship"], None));
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
    let shipped = support::stdout_json(&run(&server, &a, &["ship"], None));
    assert!(shipped["objects"].as_u64().is_some(), "{shipped}");
    let again = support::stdout_json(&run(&server, &a, &["ship"], None));
    assert_eq!(
        (again["objects"].as_u64(), again["bytes"].as_u64()),
        (Some(0), Some(0)),
        "{again}"
    );

    // Another machine claims the guild from the store alone: every acknowledged event, the
    // ones acknowledged while the server was stopped included.
    let claimed = claim(&server, &b, "b");
    assert_eq!(
        (claimed["epoch"].as_u64(), claimed["seq"].as_u64()),
        (Some(2), Some(90)),
        "{claimed}"
    );
    let (sa, sb) = (state(&server, &a), state(&server, &b));
    assert_eq!(sa, sb);
    assert_eq!(sb["seq"].as_u64(), Some(90), "{sb}");
    drop(server);
    eprintln!(
        "server_stopped_during_apply_always_then_ship_resumes: {:?}",
        started.elapsed()
    );
}

/// Contract §5: `reprise bench --remote URL` adds `s3 PUT floor`, `reprise remote 64 guilds`
/// and `claim` after the local rows, measured against the store, and leaves no object
/// behind (the run works under its own key prefix and deletes it).
#[test]
fn bench_quick_with_remote_rows_against_moto() {
    use object_store::ObjectStore;
    let started = Instant::now();
    let Some(server) = moto() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&server, tmp.path(), &["bench", "--quick", "--json"], None);
    let report: Value = serde_json::from_str(&ok(&out)).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    let local = names
        .iter()
        .position(|n| *n == "s3 PUT floor")
        .unwrap_or_else(|| panic!("no remote rows: {names:?}"));
    assert_eq!(
        names[local..],
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
    let (store, rt) = s3_client(&server);
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

/// The state `events(seed, n)` leave, as `reprise state` prints it (without `guild` and `seq`).
fn fold(seed: u64, n: usize) -> Value {
    let mut w = Workload::new(seed);
    let mut state = State::new(HISTORY_MAX_DEFAULT);
    for _ in 0..n {
        let e = w.next_event(&state);
        apply(&mut state, &e);
    }
    serde_json::to_value(&state).unwrap()
}

/// Contract §5: an event acknowledged by `apply --durability remote` is in the store. The
/// process is killed (SIGKILL) in the middle of a stream fed through a pipe, after 150
/// acknowledgements; a claim on another machine, from the store alone, recovers at least every
/// acknowledged event, and the state it recovers is the fold of the events through its seq.
#[test]
fn sigkill_during_remote_apply_keeps_every_printed_seq_against_moto() {
    let started = Instant::now();
    let Some(server) = moto() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    const SEED: u64 = 12;
    let input = events(SEED, 2000);
    // Kill it once it has acknowledged 150 events, whatever it is doing then.
    let apply = command(
        &server,
        &a,
        &["apply", "--guild", GUILD, "--durability", "remote"],
    );
    let (acked, rest) = support::kill_after_acks(apply, input.concat(), 150);
    for (i, &seq) in acked.iter().enumerate() {
        assert_eq!(seq, i as u64 + 1, "acknowledgements in order");
    }
    let mut last = acked[acked.len() - 1];
    // What the process printed before it died, and had not been read yet, counts as well.
    for line in rest.lines().filter(|l| l.ends_with('}')) {
        last = last.max(seq_of(line));
    }

    let claimed = claim(&server, &b, "b");
    let seq = claimed["seq"].as_u64().unwrap();
    assert!((last..=2000).contains(&seq), "{claimed}: printed {last}");
    let mut got = state(&server, &b);
    let fields = got.as_object_mut().unwrap();
    assert_eq!(fields.remove("seq").and_then(|s| s.as_u64()), Some(seq));
    fields.remove("guild");
    assert!(
        got == fold(SEED, seq as usize),
        "the state claimed at seq {seq} is not the fold of events 1..={seq}"
    );
    drop(server);
    eprintln!(
        "sigkill_during_remote_apply_keeps_every_printed_seq_against_moto: printed {last}, \
         claimed {seq}, {:?}",
        started.elapsed()
    );
}

/// Contract §5: two claims of one guild started at the same moment, by two machines with empty
/// directories, leave exactly one owner able to append: one of them (whose claim succeeded),
/// never the old owner. The store's create-if-absent decides between them.
#[test]
fn two_claims_at_once_leave_exactly_one_owner_able_to_append_against_moto() {
    let started = Instant::now();
    let Some(server) = moto() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| tmp.path().join(name);
    ok(&run(
        &server,
        &dir("a"),
        &["apply", "--guild", GUILD],
        Some(&events(5, 30).concat()),
    ));
    ok(&run(&server, &dir("a"), &["ship"], None));
    let claim_as = |name: &str| {
        let mut cmd = command(&server, &dir(name), &["claim", "--guild", GUILD]);
        cmd.args(["--owner", name]);
        cmd
    };
    let (c, d) = support::at_once(claim_as("c"), claim_as("d"));
    for out in [&c, &d] {
        assert!(
            matches!(out.status.code(), Some(0 | 3)),
            "{}",
            support::stderr(out)
        );
    }
    let more = events(6, 1).concat();
    let mut able = Vec::new();
    for name in ["a", "c", "d"] {
        let out = run(
            &server,
            &dir(name),
            &["apply", "--guild", GUILD],
            Some(&more),
        );
        match out.status.code() {
            Some(0) => able.push(name),
            Some(3) => {}
            other => panic!("{name}: {other:?}: {}", support::stderr(&out)),
        }
    }
    assert_eq!(able.len(), 1, "owners able to append: {able:?}");
    let winner = match able[0] {
        "c" => &c,
        "d" => &d,
        other => panic!("{other}, the old owner, can still append"),
    };
    assert_eq!(winner.status.code(), Some(0), "{}", support::stderr(winner));
    drop(server);
    eprintln!(
        "two_claims_at_once_leave_exactly_one_owner_able_to_append_against_moto: claims exited \
         {:?} and {:?}, {} owns, {:?}",
        c.status.code(),
        d.status.code(),
        able[0],
        started.elapsed()
    );
}

/// Contract §5: one byte changed in an object of the store (by another client, with a plain
/// PUT) makes `claim` exit 2 naming the object's key, before anything is written: nothing in
/// the claiming directory, and no object in the store (neither a claim nor a fence: the owner
/// is not fenced by a claim that could not complete).
#[test]
fn a_changed_byte_in_the_remote_makes_claim_exit_2_naming_the_object_against_moto() {
    let started = Instant::now();
    let Some(server) = moto() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    ok(&run(
        &server,
        &a,
        &["apply", "--guild", GUILD],
        Some(&events(3, 50).concat()),
    ));
    ok(&run(&server, &a, &["ship"], None));
    // The first batch of a's writer log: its CRC-32 ends it, so flip a byte just before.
    let writer = std::fs::read_to_string(a.join("remote/WRITER")).unwrap();
    let writer = writer.trim();
    assert!(
        writer.len() == 32 && writer.bytes().all(|c| c.is_ascii_hexdigit()),
        "{writer}"
    );
    let key = format!("fleet/writers/{writer}/{:020}", 1);
    let objects = keys(&server, "fleet/");
    assert!(objects.contains(&key), "{key} not in {objects:?}");
    let (status, mut bytes) = http(&server, "GET", &format!("/{BUCKET}/{key}"), b"");
    assert_eq!(status, 200);
    let at = bytes.len() - 3;
    bytes[at] ^= 0x40;
    let (status, answer) = http(&server, "PUT", &format!("/{BUCKET}/{key}"), &bytes);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(
        http(&server, "GET", &format!("/{BUCKET}/{key}"), b"").1,
        bytes
    );

    let out = run(&server, &b, &["claim", "--guild", GUILD], None);
    let err = support::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&key), "{err}");
    assert!(out.stdout.is_empty());
    assert!(
        !b.join("guilds").join(GUILD).exists(),
        "nothing local was written"
    );
    assert_eq!(
        keys(&server, "fleet/"),
        objects,
        "nothing remote was written"
    );
    drop(server);
    eprintln!(
        "a_changed_byte_in_the_remote_makes_claim_exit_2_naming_the_object_against_moto: {err:?}, \
         {:?}",
        started.elapsed()
    );
}

//! The remote protocol against a real S3-compatible server: moto's, started on 127.0.0.1 by
//! this test and stopped when it ends. Through the CLI, separate directories standing for
//! separate machines. Skipped (with a message) when `moto_server` is not installed: set
//! `REPRISE_MOTO_SERVER` to its path or put it on PATH (`pip install 'moto[server]'`;
//! `.ci/run` installs it into a virtual environment).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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

fn run(server: &Server, dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reprise"))
        .arg("--dir")
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

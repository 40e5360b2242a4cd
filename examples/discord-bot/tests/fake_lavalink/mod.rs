//! A fake Lavalink v4 node on a local port: the websocket (`/v4/websocket`, which sends the
//! `ready` op with a session id) and the REST endpoints the bot uses, recording every REST
//! request.
//!
//! HTTP/1.1 by hand on a tokio `TcpListener` (keep-alive, `Content-Length` bodies: what
//! lavalink-rs's hyper client sends); the websocket handshake is answered by hand too, and the
//! connection then handed to tokio-tungstenite.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// One REST request the fake received.
#[derive(Clone, Debug)]
pub struct Request {
    /// `PATCH`, `GET`, `DELETE`.
    pub method: String,
    /// The path with its query.
    pub path: String,
    /// The headers, names in lowercase.
    pub headers: Vec<(String, String)>,
    /// The body, parsed as JSON (`Null` when empty).
    pub body: serde_json::Value,
    /// The body's bytes.
    pub raw_body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// What the fake answers.
#[derive(Clone, Default)]
pub struct Script {
    /// The session id of the `ready` op.
    pub session_id: String,
    /// Guilds whose player `PATCH` is refused with Lavalink's 400 error object.
    pub refused_guilds: HashSet<u64>,
    /// The JSON answer of `GET /v4/loadtracks`.
    pub load_result: serde_json::Value,
}

/// A running fake node.
pub struct FakeLavalink {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The REST requests, in the order they arrived.
    pub requests: mpsc::UnboundedReceiver<Request>,
    /// How many websocket clients completed the handshake.
    pub websockets: Arc<Mutex<usize>>,
}

impl FakeLavalink {
    /// Starts the fake on a free local port.
    pub async fn start(script: Script) -> FakeLavalink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, requests) = mpsc::unbounded_channel();
        let websockets = Arc::new(Mutex::new(0));
        let count = websockets.clone();
        let script = Arc::new(script);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (tx, script, count) = (tx.clone(), script.clone(), count.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, tx, &script, &count).await;
                });
            }
        });
        FakeLavalink {
            addr,
            requests,
            websockets,
        }
    }

    /// The next REST request (panics after 30 s without one: a bound against a hang, not a
    /// wait for work).
    pub async fn next_request(&mut self) -> Request {
        tokio::time::timeout(std::time::Duration::from_secs(30), self.requests.recv())
            .await
            .expect("a request within 30 s")
            .expect("the fake is running")
    }

    /// Whether a REST request is already waiting (none must be, after the expected ones).
    pub fn try_next_request(&mut self) -> Option<Request> {
        self.requests.try_recv().ok()
    }
}

/// Serves one connection: REST requests until the client closes it, or a websocket.
async fn serve(
    stream: TcpStream,
    tx: mpsc::UnboundedSender<Request>,
    script: &Script,
    websockets: &Mutex<usize>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).await?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        if header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
            let key = header("sec-websocket-key").unwrap_or_default();
            let answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\n\r\n",
                derive_accept_key(key.as_bytes())
            );
            let mut stream = reader.into_inner();
            stream.write_all(answer.as_bytes()).await?;
            let mut ws = WebSocketStream::from_raw_socket(stream, Role::Server, None).await;
            *websockets.lock().unwrap() += 1;
            let ready = serde_json::json!({
                "op": "ready", "resumed": false, "sessionId": script.session_id,
            });
            ws.send(Message::text(ready.to_string()))
                .await
                .map_err(std::io::Error::other)?;
            // Keep the connection open until the client goes.
            while let Some(Ok(_)) = ws.next().await {}
            return Ok(());
        }
        let length: usize = header("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        let raw_body = body;
        let body = if raw_body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&raw_body).expect("a JSON body")
        };
        let (status, answer) = answer(&method, &path, &body, script);
        let _ = tx.send(Request {
            method,
            path,
            headers,
            body,
            raw_body,
        });
        let text = answer.map(|a| a.to_string()).unwrap_or_default();
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        reader.get_mut().write_all(response.as_bytes()).await?;
    }
}

/// The status line's code and reason, and the JSON answer (none for 204).
fn answer(
    method: &str,
    path: &str,
    body: &serde_json::Value,
    script: &Script,
) -> (&'static str, Option<serde_json::Value>) {
    if path.starts_with("/v4/loadtracks") {
        return ("200 OK", Some(script.load_result.clone()));
    }
    let guild: Option<u64> = path
        .split("/players/")
        .nth(1)
        .and_then(|rest| rest.split('?').next())
        .and_then(|g| g.parse().ok());
    match (method, guild) {
        ("DELETE", Some(_)) => ("204 No Content", None),
        ("PATCH", Some(guild)) if script.refused_guilds.contains(&guild) => (
            "400 Bad Request",
            Some(serde_json::json!({
                "timestamp": 1_700_000_000_000u64, "status": 400, "error": "Bad Request",
                "message": "the fake refuses this guild", "path": path,
            })),
        ),
        ("PATCH", Some(guild)) => (
            "200 OK",
            Some(serde_json::json!({
                "guildId": guild.to_string(), "track": body.get("track"),
                "volume": body.get("volume").cloned().unwrap_or(100.into()),
                "paused": body.get("paused").cloned().unwrap_or(false.into()),
                "state": {"time": 0, "position": 0, "connected": true, "ping": 1},
                "voice": body.get("voice"), "filters": body.get("filters"),
            })),
        ),
        _ => (
            "404 Not Found",
            Some(serde_json::json!({
                "timestamp": 1_700_000_000_000u64, "status": 404, "error": "Not Found",
                "message": "no such route in the fake", "path": path,
            })),
        ),
    }
}

//! A small HTTP/1.1 server that misbehaves on request, for the resilience tests.
//!
//! Paths (each `key` has its own counter of requests):
//! - `/ok` answers 200.
//! - `/fail?key=K&n=N&status=S` answers S (500 by default) to the first N requests of K, then 200;
//!   a 503 carries `Retry-After: 1`.
//! - `/reset?key=K&n=N` closes the first N connections of K without answering, then 200.
//! - `/slow?ms=M` answers 200 after M milliseconds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

pub(crate) struct FaultServer {
    pub(crate) addr: SocketAddr,
    hits: Arc<Mutex<HashMap<String, u32>>>,
    // Owns the accept loop and every connection: dropping the server stops them.
    _tasks: JoinSet<()>,
}

impl FaultServer {
    pub(crate) async fn start() -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let mut tasks = JoinSet::new();
        let counter = hits.clone();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                connections.spawn(serve(socket, counter.clone()));
            }
        });
        FaultServer {
            addr,
            hits,
            _tasks: tasks,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests seen for `key`.
    pub(crate) fn hits(&self, key: &str) -> u32 {
        self.hits.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

async fn serve(mut socket: TcpStream, hits: Arc<Mutex<HashMap<String, u32>>>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let target = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let key = param(query, "key").unwrap_or(path).to_owned();
    let seen = {
        let mut hits = hits.lock().unwrap();
        let n = hits.entry(key).or_insert(0);
        *n += 1;
        *n
    };
    let n: u32 = param(query, "n").and_then(|n| n.parse().ok()).unwrap_or(0);
    let (status, extra) = match path {
        "/fail" if seen <= n => {
            let status: u16 = param(query, "status")
                .and_then(|s| s.parse().ok())
                .unwrap_or(500);
            let extra = if status == 503 {
                "Retry-After: 1\r\n"
            } else {
                ""
            };
            (status, extra)
        }
        "/reset" if seen <= n => return, // drop the socket unanswered
        "/slow" => {
            let ms = param(query, "ms").and_then(|m| m.parse().ok()).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            (200, "")
        }
        _ => (200, ""),
    };
    let body = format!("{status} after {seen}");
    let response = format!(
        "HTTP/1.1 {status} X\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = socket.write_all(response.as_bytes()).await;
    let _ = socket.shutdown().await;
}

//! A hostile HTTP endpoint (a push service or webhook receiver someone registered): it answers
//! every request `500` with a huge declared body and streams zeros until the client hangs up,
//! counting what it managed to write. A client that reads answers to a bound hangs up after a
//! few KiB; one that buffers the whole answer takes hundreds of megabytes.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the endpoint declares it will send: 200 MiB.
pub const DECLARED_BYTES: u64 = 200 * 1024 * 1024;

pub struct FloodEndpoint {
    pub url: String,
    /// Requests whose connection the client closed, and the most bytes written to any one.
    finished: Arc<AtomicUsize>,
    most_written: Arc<AtomicU64>,
}

impl FloodEndpoint {
    pub async fn start() -> FloodEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let finished = Arc::new(AtomicUsize::new(0));
        let most_written = Arc::new(AtomicU64::new(0));
        let (f, m) = (finished.clone(), most_written.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (f, m) = (f.clone(), m.clone());
                tokio::spawn(async move {
                    // Read the request head (and whatever body came with it).
                    let mut buf = vec![0u8; 64 * 1024];
                    let _ = socket.read(&mut buf).await;
                    let head = format!(
                        "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\ncontent-length: {DECLARED_BYTES}\r\n\r\n"
                    );
                    if socket.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = vec![b'x'; 64 * 1024];
                    let mut written: u64 = 0;
                    while written < DECLARED_BYTES {
                        if socket.write_all(&chunk).await.is_err() {
                            break;
                        }
                        written += chunk.len() as u64;
                    }
                    m.fetch_max(written, Ordering::SeqCst);
                    f.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        FloodEndpoint {
            url: format!("http://127.0.0.1:{port}/flood"),
            finished,
            most_written,
        }
    }

    /// Requests answered to the end or hung up on.
    pub fn finished(&self) -> usize {
        self.finished.load(Ordering::SeqCst)
    }

    /// The most body bytes any one request took before the client hung up.
    pub fn most_written(&self) -> u64 {
        self.most_written.load(Ordering::SeqCst)
    }
}

/// This process's resident set size, bytes.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

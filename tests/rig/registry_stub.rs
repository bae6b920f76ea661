//! A minimal in-test stand-in for a Confluent schema registry: `POST /subjects/{s}/versions`
//! registers a schema (same text → same id) and `GET /schemas/ids/{id}` returns it. It exists
//! only until the rig has a real registry; it speaks just enough HTTP/1.1 for reqwest.

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A running stub; the server task ends with the test's runtime.
pub struct RegistryStub {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Count of GET /schemas/ids requests, to check the decoder's cache.
    pub fetches: Arc<Mutex<u32>>,
    /// When set, GET answers 503 (registry outage).
    pub unavailable: Arc<Mutex<bool>>,
}

impl RegistryStub {
    /// Starts the stub on a free port.
    pub async fn start() -> RegistryStub {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let schemas: Arc<Mutex<Vec<String>>> = Arc::default();
        let fetches: Arc<Mutex<u32>> = Arc::default();
        let unavailable: Arc<Mutex<bool>> = Arc::default();
        let (s, f, u) = (schemas.clone(), fetches.clone(), unavailable.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (s, f, u) = (s.clone(), f.clone(), u.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head_end, content_len) = loop {
                        let n = match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (i + 4, len);
                        }
                    };
                    while buf.len() < head_end + content_len {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let body = &buf[head_end..head_end + content_len];
                    let mut parts = head.split_whitespace();
                    let method = parts.next().unwrap_or("");
                    let path = parts.next().unwrap_or("");
                    let (status, reply) = route(method, path, body, &s, &f, &u);
                    let resp = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                        reply.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        RegistryStub {
            url,
            fetches,
            unavailable,
        }
    }
}

fn route(
    method: &str,
    path: &str,
    body: &[u8],
    schemas: &Mutex<Vec<String>>,
    fetches: &Mutex<u32>,
    unavailable: &Mutex<bool>,
) -> (&'static str, String) {
    let mut schemas = schemas.lock().unwrap_or_else(|p| p.into_inner());
    if method == "POST" && path.starts_with("/subjects/") && path.ends_with("/versions") {
        let v: serde_json::Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => return ("400 Bad Request", "{}".into()),
        };
        let text = v["schema"].as_str().unwrap_or("").to_string();
        let id = match schemas.iter().position(|s| *s == text) {
            Some(i) => i + 1,
            None => {
                schemas.push(text);
                schemas.len()
            }
        };
        return ("200 OK", format!("{{\"id\":{id}}}"));
    }
    if method == "GET" {
        if let Some(id) = path.strip_prefix("/schemas/ids/") {
            *fetches.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            if *unavailable.lock().unwrap_or_else(|p| p.into_inner()) {
                return ("503 Service Unavailable", "{}".into());
            }
            let id: usize = id.parse().unwrap_or(0);
            return match id.checked_sub(1).and_then(|i| schemas.get(i)) {
                Some(s) => ("200 OK", serde_json::json!({ "schema": s }).to_string()),
                None => (
                    "404 Not Found",
                    "{\"error_code\":40403,\"message\":\"Schema not found\"}".into(),
                ),
            };
        }
    }
    ("404 Not Found", "{}".into())
}

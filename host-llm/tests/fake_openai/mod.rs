//! a scripted openai-compatible chat server on 127.0.0.1 (loopback only),
//! shared by the tests that plan through `--backend remote`.

#![allow(dead_code, reason = "each test binary uses part of the fake")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

/// a scripted server: answers the n-th request with the n-th content and
/// `tokens` of usage; keeps every request body.
pub struct Fake {
    /// the api base, `http://127.0.0.1:port/v1`.
    pub url: String,
    /// every request: its header lines and json body.
    pub seen: Seen,
}

/// every request the server saw: its header lines and json body.
pub type Seen = Arc<Mutex<Vec<(Vec<String>, Value)>>>;

/// one scripted reply: status, body, and a delay before it.
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

/// a chat completion whose content is `content`.
pub fn completion(content: &str, tokens: u64) -> Reply {
    let body = json!({
        "id": "x", "object": "chat.completion", "model": "fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": tokens, "completion_tokens": 20, "total_tokens": tokens + 20},
    })
    .to_string();
    Reply { status: 200, body, delay: Duration::ZERO }
}

pub fn fake(answers: Vec<&'static str>, tokens: u64) -> Fake {
    fake_with(move |i, _| {
        let content = answers.get(i).or(answers.last()).copied().unwrap_or("{}");
        completion(content, tokens)
    })
}

/// a server whose n-th reply is `reply(n, body)`.
pub fn fake_with(reply: impl Fn(usize, &Value) -> Reply + Send + 'static) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!("http://{}/v1", listener.local_addr().expect("addr"));
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for (i, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().expect("clone"));
            let mut headers = Vec::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                headers.push(line.trim().to_string());
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let r = reply(i, &body);
            log.lock().expect("lock").push((headers, body));
            std::thread::sleep(r.delay);
            let reason = if r.status == 200 { "OK" } else { "Error" };
            let _ = write!(
                conn,
                "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                r.status,
                r.body.len()
            );
            let _ = conn.write_all(r.body.as_bytes());
        }
    });
    Fake { url, seen }
}

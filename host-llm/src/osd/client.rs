//! `llmsh`'s side of the daemon's socket: checks the runtime dir and the
//! socket are private to this user before connecting, sends one request
//! line and reads the reply line that carries the same id.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use serde_json::{json, Value};

use super::{CLIENT_TIMEOUT, MAX_LINE};
use crate::code::Code;
use crate::common::Exit;

/// why a request got no answer, or the daemon's refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsdError {
    /// a stable code (`system.down`, `osd.runtime_dir`, or the daemon's).
    pub code: String,
    /// for people.
    pub message: String,
}

impl OsdError {
    /// an error of `code`.
    pub fn new(code: Code, message: impl Into<String>) -> OsdError {
        OsdError { code: code.name().into(), message: message.into() }
    }

    /// the exit code llmsh ends with: its code's class.
    pub fn exit(&self) -> Exit {
        crate::code::exit_of(&self.code)
    }

    /// the json error form.
    pub fn to_json(&self) -> Value {
        json!({"error": {"code": self.code, "message": self.message}})
    }

    /// prints the json error on stdout and returns the exit code.
    pub fn report(&self) -> Exit {
        crate::common::print_json(&self.to_json());
        self.exit()
    }

    /// no daemon is running.
    pub fn is_down(&self) -> bool {
        self.code == Code::SystemDown.name()
    }
}

/// a connection to `llm-osd`.
pub struct Client {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u64,
    /// the daemon's `ping` answer: system, pid, audit log, sessions.
    pub info: Value,
}

/// the socket path, after checking the runtime dir is private to this user.
pub fn socket() -> Result<PathBuf, OsdError> {
    let unsafe_dir = |m: String| OsdError::new(Code::OsdRuntimeDir, m);
    let dir = super::runtime_dir().map_err(|e| unsafe_dir(e.0))?;
    let sock = super::socket_path(&dir);
    match std::fs::symlink_metadata(&dir) {
        Err(_) => return Err(down(&sock)),
        Ok(_) => super::check_private(&dir, super::my_uid()).map_err(|e| unsafe_dir(e.0))?,
    }
    if std::fs::symlink_metadata(&sock).is_err() {
        return Err(down(&sock));
    }
    super::check_socket(&sock, super::my_uid()).map_err(|e| unsafe_dir(e.0))?;
    Ok(sock)
}

fn down(sock: &std::path::Path) -> OsdError {
    OsdError::new(
        Code::SystemDown,
        format!(
            "no system is running (no llm-osd at `{}`): start one with `llmsh boot [--system hosted|qemu]`, or pass `--boot`; nothing ran",
            sock.display()
        ),
    )
}

impl Client {
    /// connects to the running daemon and asks who it is.
    pub fn connect() -> Result<Client, OsdError> {
        let sock = socket()?;
        let stream = UnixStream::connect(&sock).map_err(|_| down(&sock))?;
        let io = |e: std::io::Error| OsdError::new(Code::OsdIo, e.to_string());
        stream.set_read_timeout(Some(CLIENT_TIMEOUT)).map_err(io)?;
        stream.set_write_timeout(Some(CLIENT_TIMEOUT)).map_err(io)?;
        let reader = BufReader::new(stream.try_clone().map_err(io)?);
        let mut c = Client { stream, reader, next_id: 1, info: Value::Null };
        c.info = c.call("ping", json!({}))?;
        Ok(c)
    }

    /// `hosted` or `qemu`.
    pub fn system(&self) -> &str {
        self.info["system"].as_str().unwrap_or("")
    }

    /// the policy the running system enforces (as llm-osd read it when it
    /// booted the system): what names a receipt's invariant ids and explains
    /// its violations.
    pub fn policy(&self) -> Result<policy_verifier::Policy, OsdError> {
        let text = self.info["policy"]
            .as_str()
            .ok_or_else(|| OsdError::new(Code::OsdReply, "llm-osd did not say which policy the system enforces"))?;
        policy_verifier::json::parse_policy(text)
            .map_err(|e| OsdError::new(Code::OsdReply, format!("the running system's policy does not parse: {e}")))
    }

    /// one request: `op` with `fields`; the reply's fields, or its error.
    pub fn call(&mut self, op: &str, fields: Value) -> Result<Value, OsdError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut req = fields;
        req["id"] = json!(id);
        req["op"] = json!(op);
        let mut line = req.to_string();
        line.push('\n');
        let io = |e: std::io::Error| OsdError::new(Code::OsdIo, format!("llm-osd: {e}"));
        self.stream.write_all(line.as_bytes()).map_err(io)?;
        let mut buf = Vec::new();
        (&mut self.reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut buf).map_err(io)?;
        if buf.last() != Some(&b'\n') {
            return Err(OsdError::new(Code::OsdIo, "llm-osd closed the connection or sent an overlong reply"));
        }
        let v: Value = serde_json::from_slice(&buf)
            .map_err(|e| OsdError::new(Code::OsdReply, format!("llm-osd's reply is not json: {e}")))?;
        if let Some(e) = v.get("error") {
            // the exit code follows from the code, here as in the daemon
            return Err(OsdError {
                code: e["code"].as_str().unwrap_or(Code::OsdReply.name()).to_owned(),
                message: e["message"].as_str().unwrap_or("").to_owned(),
            });
        }
        if v["id"].as_u64() != Some(id) {
            return Err(OsdError::new(Code::OsdReply, "llm-osd answered another request"));
        }
        Ok(v)
    }
}

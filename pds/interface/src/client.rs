//! the host end of the link: frames requests onto any byte stream (a unix
//! socket to the hosted system, qemu's serial port) and reads framed replies.

use std::io::{self, Read, Write};

use crate::frame::{self, Deframer, FrameError, Pushed, MAX_FRAME};
use crate::link::{Reply, Request};

/// why a request got no reply.
#[derive(Debug)]
pub enum ClientError {
    /// the stream failed.
    Io(io::Error),
    /// the request could not be encoded or framed (too large).
    Encode,
    /// the stream closed before a reply.
    Closed,
    /// a reply frame that is not a `Reply`.
    Decode,
    /// the system reported this PD as faulted (on seL4, the Microkit
    /// monitor's console report); it answers nothing until a reboot.
    Fault(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "link i/o: {e}"),
            Self::Encode => write!(f, "request too large for one frame"),
            Self::Closed => write!(f, "link closed before a reply"),
            Self::Decode => write!(f, "reply frame does not decode"),
            Self::Fault(pd) => write!(
                f,
                "the system's `{pd}` PD faulted and answers nothing until the system is booted again (`llmsh boot --stop`, then boot)"
            ),
        }
    }
}

impl std::error::Error for ClientError {}

/// a link client over a byte stream.
pub struct LinkClient<S> {
    stream: S,
    rx: Box<Deframer<MAX_FRAME>>,
    pending: std::collections::VecDeque<u8>,
    /// frames dropped on the way back (bad CRC etc.), since creation.
    pub dropped: u64,
    /// the plan key: plans go out sealed (`Request::Sealed`) when set.
    plan_key: Option<crate::keys::Key>,
    /// the system's boot epoch, learnt from the first `Status`.
    epoch: Option<u64>,
}

impl<S: Read + Write> LinkClient<S> {
    /// a client on `stream`.
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            rx: Box::new(Deframer::new()),
            pending: Default::default(),
            dropped: 0,
            plan_key: None,
            epoch: None,
        }
    }

    /// seal every plan under `key` (the installation's plan key).
    pub fn with_plan_key(mut self, key: crate::keys::Key) -> Self {
        self.plan_key = Some(key);
        self
    }

    /// the system's boot epoch (one `Status` the first time).
    pub fn epoch(&mut self) -> Result<u64, ClientError> {
        if let Some(e) = self.epoch {
            return Ok(e);
        }
        match self.exchange(&Request::Status)? {
            Reply::Status(s) => {
                self.epoch = Some(s.epoch);
                Ok(s.epoch)
            }
            _ => Err(ClientError::Decode),
        }
    }

    /// `req` as it goes out: a plan sealed for the system's epoch when this
    /// client holds the plan key, else unchanged (and refused: `auth.mac`).
    pub fn seal<'a>(&mut self, req: &Request<'a>) -> Result<Request<'a>, ClientError> {
        match (req, self.plan_key) {
            (Request::Apply(_), Some(key)) => Ok(req.sealed(&key, self.epoch()?)),
            _ => Ok(req.clone()),
        }
    }

    /// the framed bytes of a request, as they go on the wire.
    pub fn frame_request(req: &Request<'_>) -> Result<Vec<u8>, ClientError> {
        let payload = postcard::to_allocvec(req).map_err(|_| ClientError::Encode)?;
        let mut out = vec![0u8; MAX_FRAME];
        let n = frame::encode(&payload, &mut out).map_err(|_: FrameError| ClientError::Encode)?;
        out.truncate(n);
        Ok(out)
    }

    /// send raw bytes (tests: garbage, partial frames).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(bytes).map_err(ClientError::Io)?;
        self.stream.flush().map_err(ClientError::Io)
    }

    /// read the next reply frame.
    pub fn read_reply(&mut self) -> Result<Reply, ClientError> {
        let mut buf = [0u8; 512];
        loop {
            // bytes after a frame belong to the next reply: keep them
            while let Some(b) = self.pending.pop_front() {
                match self.rx.push(b) {
                    Pushed::Pending => {}
                    Pushed::Dropped(_) => self.dropped += 1,
                    Pushed::Frame(p) => {
                        return postcard::from_bytes(p).map_err(|_| ClientError::Decode)
                    }
                }
            }
            let n = self.stream.read(&mut buf).map_err(ClientError::Io)?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.pending.extend(buf.iter().take(n));
        }
    }

    /// one request, one reply; a plan is sealed first ([`Self::seal`]).
    pub fn request(&mut self, req: &Request<'_>) -> Result<Reply, ClientError> {
        let req = self.seal(req)?;
        self.exchange(&req)
    }

    fn exchange(&mut self, req: &Request<'_>) -> Result<Reply, ClientError> {
        let framed = Self::frame_request(req)?;
        self.send_raw(&framed)?;
        self.read_reply()
    }

    /// the stream, back.
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// the stream, borrowed (read timeouts, transport state).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }
}

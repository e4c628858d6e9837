//! the qemu transport of the link: the seL4 image (board/qemu-virt-aarch64)
//! booted in `qemu-system-aarch64`, its PL011 on a unix socket that qemu
//! listens on (`$runtime_dir/qemu.sock`), a pidfile (`qemu.pid`) and the
//! console text the kernel and the PDs print (`qemu.console`).
//!
//! the PL011 carries both the link's frames and the debug console: frames
//! are COBS with a CRC and the link PD starts each with a delimiter, so text
//! between frames is dropped by the deframer and never reaches the client
//! (docs/qemu.md). [`Tap`] copies that text, line by line, into the console
//! file and, while booting, to the progress output.
//!
//! ready means: a `Status` request got its reply, i.e. link, verifier and
//! the capability PDs all run.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use board_qemu_virt_aarch64::image::{self, Config, ImageOptions};
use board_qemu_virt_aarch64::qemu::{self as board_qemu, Serial};
use pd_interface::client::{ClientError, LinkClient};
use pd_interface::link::{Reply, Request};

use crate::code::Code;
use crate::paths::runtime_dir;

/// how long a boot may take until the system answers `Status`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// how long one reply may take once the system is ready, over all resends.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// how long one attempt waits before the request is sent again. the debug
/// kernel and the PDs print on the same UART, and text that lands inside a
/// reply frame makes the host drop that frame; a resend of the same bytes is
/// safe (the verifier PD answers a resent plan with its stored receipt).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// how often the boot wait re-sends its `Status` probe.
const PROBE_EVERY: Duration = Duration::from_millis(50);

/// the socket qemu serves the PL011 on.
pub fn socket_path() -> PathBuf {
    runtime_dir().join("qemu.sock")
}

/// the pidfile of a qemu started by `llmsh boot --system qemu`.
pub fn pidfile_path() -> PathBuf {
    runtime_dir().join("qemu.pid")
}

/// the console text (kernel, monitor, PD debug prints) seen by llmsh.
pub fn console_path() -> PathBuf {
    runtime_dir().join("qemu.console")
}

/// qemu's gdb stub, when `LLM_OS_QEMU_GDB=1` asks for it.
pub fn gdb_path() -> PathBuf {
    runtime_dir().join("qemu.gdb")
}

/// qemu's own stderr.
fn stderr_path() -> PathBuf {
    runtime_dir().join("qemu.stderr")
}

/// the SDK config llmsh builds and boots: `LLM_OS_QEMU_CONFIG`, else debug.
pub fn config() -> Config {
    std::env::var("LLM_OS_QEMU_CONFIG").ok().as_deref().and_then(Config::parse).unwrap_or(Config::Debug)
}

/// why qemu could not be reached.
#[derive(Debug)]
pub enum QemuError {
    /// the manifest (system/llm-os.system, policy.toml) breaks a rule.
    Manifest(system_manifest::ManifestError),
    /// no SDK, or the image did not build.
    Image(image::ImageError),
    /// no `qemu-system-aarch64`.
    NoQemu,
    /// qemu did not start or exited.
    Qemu(String),
    /// the system booted but did not answer in time.
    NotReady(Duration),
    /// a PD faulted while the system booted (the Microkit monitor named it).
    Fault(String),
    /// socket i/o.
    Io(io::Error),
}

impl std::fmt::Display for QemuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Manifest(e) => write!(f, "manifest: {e}"),
            Self::Image(e) => write!(f, "{e}"),
            Self::NoQemu => write!(f, "{} not found (set QEMU_SYSTEM_AARCH64 or PATH)", board_qemu::QEMU),
            Self::Qemu(e) => write!(f, "qemu: {e}"),
            Self::Fault(pd) => write!(
                f,
                "the PD `{pd}` faulted while the seL4 system booted (the Microkit monitor's report is in `{}`)",
                console_path().display()
            ),
            Self::NotReady(t) => write!(
                f,
                "the seL4 system did not answer within {} s (console: `{}`)",
                t.as_secs(),
                console_path().display()
            ),
            Self::Io(e) => write!(f, "qemu link: {e}"),
        }
    }
}

impl QemuError {
    /// a stable code for the json error form.
    pub fn code(&self) -> Code {
        match self {
            Self::Manifest(_) => Code::SystemManifest,
            Self::Image(image::ImageError::NoSdk(_)) => Code::SystemNoSdk,
            Self::Image(_) => Code::SystemImage,
            Self::NoQemu => Code::SystemNoQemu,
            Self::Qemu(_) | Self::NotReady(_) => Code::SystemBoot,
            Self::Fault(_) => Code::SystemPdFault,
            Self::Io(_) => Code::LinkIo,
        }
    }
}

/// what the Microkit monitor prints before a faulted PD's name.
const FAULT_MARK: &str = "MON|ERROR: faulting PD:";

/// the socket, with everything read copied to the console file as text.
pub struct Tap {
    stream: UnixStream,
    console: Option<File>,
    line: Vec<u8>,
    /// complete console lines not yet taken by [`Tap::take_lines`].
    lines: Vec<String>,
    /// the PD the Microkit monitor reported as faulted, if any: it serves
    /// nothing until the system is booted again.
    fault: Option<String>,
}

impl Tap {
    fn new(stream: UnixStream) -> Self {
        let console = std::fs::OpenOptions::new().create(true).append(true).open(console_path()).ok();
        Self { stream, console, line: Vec::new(), lines: Vec::new(), fault: None }
    }

    /// the PD the monitor reported as faulted since boot.
    pub fn fault(&self) -> Option<&str> {
        self.fault.as_deref()
    }

    /// text is printable ascii, tab, cr, escape (the kernel's colours); a
    /// delimiter or any other byte means frame bytes, which are not logged.
    fn observe(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\n' => {
                    let text = String::from_utf8_lossy(&self.line).trim_end_matches('\r').to_owned();
                    self.line.clear();
                    if text.is_empty() {
                        continue;
                    }
                    if let Some(f) = self.console.as_mut() {
                        let _ = writeln!(f, "{text}");
                    }
                    // microkit's monitor: `MON|ERROR: faulting PD: <name>`
                    if let (None, Some((_, pd))) = (&self.fault, text.split_once(FAULT_MARK)) {
                        let pd: String = pd.trim().chars().take(64).collect();
                        self.fault = Some(pd);
                    }
                    if self.lines.len() < 1024 {
                        self.lines.push(text);
                    }
                }
                0x20..=0x7e | b'\t' | b'\r' | 0x1b => self.line.push(b),
                _ => self.line.clear(),
            }
            if self.line.len() > 4096 {
                self.line.clear();
            }
        }
    }

    /// console lines seen since the last call.
    pub fn take_lines(&mut self) -> Vec<String> {
        std::mem::take(&mut self.lines)
    }

    fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(t))
    }
}

impl Read for Tap {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stream.read(buf)?;
        self.observe(buf.get(..n).unwrap_or(&[]));
        Ok(n)
    }
}

impl Write for Tap {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// a link to the seL4 system in qemu.
pub struct QemuLink {
    /// the link client on the PL011 socket.
    pub client: LinkClient<Tap>,
    /// qemu, when this llmsh started it for this command: stopped on drop.
    owned: Option<Child>,
    /// qemu's pid.
    pub pid: u32,
    /// from starting qemu to the first `Status` reply, when this llmsh booted it.
    pub boot_to_ready: Option<Duration>,
    /// requests sent again because a reply did not arrive in time.
    pub resends: u64,
}

/// the image options for this host: the verifier PD gets this
/// installation's keys (`LLM_OS_DEV_KEYS=1`: the dev keys) at image build.
pub fn image_options(sdk: PathBuf, config: Config) -> Result<ImageOptions, QemuError> {
    let keys = crate::common::host_keys().map_err(|e| QemuError::Image(image::ImageError::Io(e.message)))?;
    let mut opts = ImageOptions::new(sdk, config);
    // the manifest the PDs were built against (`LLM_OS_SYSTEM`), as the hosted system boots
    opts.system = crate::paths::system_path();
    opts.patches.push(image::Patch {
        image: "verifier.elf".into(),
        marker: pd_interface::keys::BLOB_MAGIC.to_vec(),
        bytes: pd_interface::keys::to_blob(&keys).to_vec(),
    });
    Ok(opts)
}

impl QemuLink {
    /// whether this llmsh started qemu for this link.
    pub fn owns_qemu(&self) -> bool {
        self.owned.is_some()
    }
}

impl Drop for QemuLink {
    fn drop(&mut self) {
        if let Some(mut c) = self.owned.take() {
            // by its pid: the child we spawned, nothing else
            let _ = c.kill();
            let _ = c.wait();
            let _ = std::fs::remove_file(socket_path());
        }
    }
}

impl QemuLink {
    /// one request, one reply. a reply lost on the way (a frame cut by
    /// console text) is recovered by sending the same bytes again every
    /// [`ATTEMPT_TIMEOUT`], up to [`REPLY_TIMEOUT`]. stale replies are
    /// skipped: a `Status` probe queued during boot may answer late, and an
    /// earlier attempt's receipt may arrive after a resend (receipts are
    /// matched by request id).
    ///
    /// a PD the monitor reported as faulted answers nothing: the request
    /// fails at once with [`ClientError::Fault`] rather than after the
    /// whole timeout.
    pub fn request(&mut self, req: &Request<'_>) -> Result<Reply, ClientError> {
        if let Some(pd) = self.client.get_mut().fault() {
            return Err(ClientError::Fault(pd.to_string()));
        }
        let framed = LinkClient::<Tap>::frame_request(req)?;
        // a leading delimiter ends whatever partial frame the link PD holds
        let mut bytes = Vec::with_capacity(framed.len() + 1);
        bytes.push(0);
        bytes.extend_from_slice(&framed);
        let started = Instant::now();
        self.client.get_mut().set_read_timeout(ATTEMPT_TIMEOUT).map_err(ClientError::Io)?;
        self.client.send_raw(&bytes)?;
        loop {
            let reply = match self.client.read_reply() {
                Ok(r) => r,
                Err(ClientError::Io(e))
                    if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
                        && started.elapsed() < REPLY_TIMEOUT =>
                {
                    if let Some(pd) = self.client.get_mut().fault() {
                        return Err(ClientError::Fault(pd.to_string()));
                    }
                    self.resends += 1;
                    self.client.send_raw(&bytes)?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !pd_interface::link::is_stale(req, &reply) {
                return Ok(reply);
            }
        }
    }
}

/// build the image (cargo and the Microkit tool are incremental) and boot it.
pub fn boot(progress: &mut dyn FnMut(&str)) -> Result<QemuLink, QemuError> {
    let (qemu, loader) = build_image(progress)?;
    boot_image(&qemu, &loader, progress)
}

/// find qemu and build the image: qemu's path and the image's loader.
pub fn build_image(progress: &mut dyn FnMut(&str)) -> Result<(PathBuf, PathBuf), QemuError> {
    let config = config();
    let sdk = image::sdk_from_env(config).map_err(QemuError::Image)?;
    let qemu = board_qemu::find_qemu().ok_or(QemuError::NoQemu)?;
    let img = build_image_with(sdk, config, progress)?;
    Ok((qemu, img.loader))
}

/// the manifest check (Microkit's rules, the capability graph, policy.toml),
/// then the image from the same .system file the PDs are built from.
pub fn build_image_with(
    sdk: std::path::PathBuf,
    config: image::Config,
    progress: &mut dyn FnMut(&str),
) -> Result<image::Image, QemuError> {
    let manifest = system_manifest::build::load().map_err(QemuError::Manifest)?;
    let mut opts = image_options(sdk, config)?;
    opts.system = manifest.system_path;
    image::build(&opts, progress).map_err(QemuError::Image)
}

/// start qemu on `loader` and wait until the system answers.
pub fn boot_image(qemu: &Path, loader: &Path, progress: &mut dyn FnMut(&str)) -> Result<QemuLink, QemuError> {
    let dir = runtime_dir();
    crate::osd::ensure_private(&dir, crate::osd::my_uid())
        .map_err(|e| QemuError::Io(io::Error::new(io::ErrorKind::PermissionDenied, e.0)))?;
    let sock = socket_path();
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(console_path());
    let stderr = File::create(stderr_path()).map_err(QemuError::Io)?;
    let started = Instant::now();
    let mut cmd = board_qemu::command(qemu, loader, &Serial::Socket(sock.clone()));
    if std::env::var_os("LLM_OS_QEMU_GDB").is_some_and(|v| v == "1") {
        let _ = std::fs::remove_file(gdb_path());
        cmd.args(board_qemu::gdb_args(&gdb_path()));
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(stderr.try_clone().map_err(QemuError::Io)?)
        .stderr(stderr)
        // its own process group: a ctrl-c at llmsh's terminal does not reach it
        .process_group(0)
        .spawn()
        .map_err(|e| QemuError::Qemu(format!("cannot start `{}`: {e}", qemu.display())))?;
    let pid = child.id();
    let _ = std::fs::write(pidfile_path(), format!("{pid}\n"));
    progress(&format!("qemu started (pid {pid}), waiting for the seL4 system"));

    // qemu listens before it runs the guest (wait=on): connect, then it boots
    let stream = loop {
        if let Ok(Some(st)) = child.try_wait() {
            let err = std::fs::read_to_string(stderr_path()).unwrap_or_default();
            return Err(QemuError::Qemu(format!("exited with {st}: {}", err.trim())));
        }
        match UnixStream::connect(&sock) {
            Ok(s) => break s,
            Err(_) if started.elapsed() < Duration::from_secs(10) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(QemuError::Io(e));
            }
        }
    };
    let mut link = QemuLink {
        client: LinkClient::new(Tap::new(stream)),
        owned: Some(child),
        pid,
        boot_to_ready: None,
        resends: 0,
    };
    match wait_ready(&mut link, started, progress) {
        Ok(t) => {
            link.boot_to_ready = Some(t);
            progress(&format!("ready in {} ms", t.as_millis()));
            Ok(link)
        }
        Err(e) => Err(e), // dropping the link stops qemu
    }
}

/// probe with `Status` until it is answered; then drop late answers to
/// earlier probes.
fn wait_ready(link: &mut QemuLink, started: Instant, progress: &mut dyn FnMut(&str)) -> Result<Duration, QemuError> {
    let probe = LinkClient::<Tap>::frame_request(&Request::Status).map_err(|_| QemuError::NotReady(READY_TIMEOUT))?;
    let mut framed = vec![0u8];
    framed.extend_from_slice(&probe);
    let mut last_probe: Option<Instant> = None;
    let ready = loop {
        if started.elapsed() > READY_TIMEOUT {
            return Err(QemuError::NotReady(READY_TIMEOUT));
        }
        if last_probe.is_none_or(|t| t.elapsed() >= PROBE_EVERY) {
            link.client.send_raw(&framed).map_err(|e| QemuError::Qemu(e.to_string()))?;
            last_probe = Some(Instant::now());
        }
        if let Some(c) = link.owned.as_mut() {
            if let Ok(Some(st)) = c.try_wait() {
                return Err(QemuError::Qemu(format!("exited with {st} during boot")));
            }
        }
        link.client.get_mut().set_read_timeout(Duration::from_millis(50)).map_err(QemuError::Io)?;
        let got = link.client.read_reply();
        for line in link.client.get_mut().take_lines() {
            if is_milestone(&line) {
                progress(&format!("{:>5} ms  {}", started.elapsed().as_millis(), line.trim()));
            }
        }
        // a PD that faulted during boot serves nothing: say which, now,
        // rather than after the whole ready timeout
        if let Some(pd) = link.client.get_mut().fault() {
            return Err(QemuError::Fault(pd.to_string()));
        }
        match got {
            Ok(Reply::Status(_)) => break started.elapsed(),
            Ok(_) => {} // an error reply to a probe cut short while booting
            Err(ClientError::Io(e)) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(ClientError::Decode) => {}
            Err(e) => return Err(QemuError::Qemu(e.to_string())),
        }
    };
    // late replies to probes still queued in the UART
    link.client.get_mut().set_read_timeout(Duration::from_millis(100)).map_err(QemuError::Io)?;
    while link.client.read_reply().is_ok() {}
    link.client.get_mut().set_read_timeout(REPLY_TIMEOUT).map_err(QemuError::Io)?;
    let _ = link.client.get_mut().take_lines();
    Ok(ready)
}

/// console lines worth showing while booting.
fn is_milestone(line: &str) -> bool {
    ["Booting all finished", "Microkit Monitor started", "MON|ERROR", "FAULT", "fault", "panicked"]
        .iter()
        .any(|m| line.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pd_interface::frame::{self, Deframer, Pushed, MAX_FRAME};
    use pd_interface::link::Receipt;

    fn reply_frame(r: &Reply) -> Vec<u8> {
        let payload = postcard::to_stdvec(r).unwrap();
        let mut out = vec![0u8; MAX_FRAME];
        let n = frame::encode(&payload, &mut out).unwrap();
        out.truncate(n);
        let mut f = vec![0u8];
        f.extend(out);
        f
    }

    /// a tap on `stream` that copies to no console file.
    fn tap(stream: UnixStream) -> Tap {
        Tap { stream, console: None, line: Vec::new(), lines: Vec::new(), fault: None }
    }

    /// a link to a system this llmsh did not start, on `stream`.
    fn link_on(stream: UnixStream) -> QemuLink {
        QemuLink { client: LinkClient::new(tap(stream)), owned: None, pid: 0, boot_to_ready: None, resends: 0 }
    }

    fn receipt(id: u64) -> Reply {
        Reply::Receipt(Receipt { request_id: id, approved: true, executed: 1, ..Receipt::default() })
    }

    #[test]
    fn a_reply_cut_by_console_text_is_recovered_by_resending_the_same_bytes() {
        let (host, mut sys) = UnixStream::pair().unwrap();
        let plan = policy_verifier::json::parse_plan(
            br#"{"version":1,"request_id":7,"session":"ops","reason":"r","actions":[{"op":"system.query"}]}"#,
        )
        .unwrap();
        let mut buf = [0u8; policy_verifier::wire::MAX_PLAN_BYTES];
        let bytes = policy_verifier::wire::encode(&plan, &mut buf).unwrap().to_vec();
        let fake = std::thread::spawn(move || {
            let mut rx = Deframer::<MAX_FRAME>::new();
            let mut got: Vec<Vec<u8>> = Vec::new();
            let mut b = [0u8; 1];
            while got.len() < 2 {
                sys.read_exact(&mut b).unwrap();
                if let Pushed::Frame(p) = rx.push(b[0]) {
                    got.push(p.to_vec());
                    if got.len() == 1 {
                        // the kernel prints into the middle of the reply
                        let f = reply_frame(&receipt(7));
                        let (x, y) = f.split_at(f.len() / 2);
                        sys.write_all(x).unwrap();
                        sys.write_all(b"MON|ERROR: something\r\n").unwrap();
                        sys.write_all(y).unwrap();
                    } else {
                        // a late receipt of an earlier request, then the answer
                        sys.write_all(&reply_frame(&receipt(6))).unwrap();
                        sys.write_all(&reply_frame(&receipt(7))).unwrap();
                    }
                }
            }
            got
        });
        let mut link = link_on(host);
        match link.request(&Request::Apply(&bytes)).unwrap() {
            Reply::Receipt(r) => assert_eq!(r.request_id, 7),
            other => panic!("{other:?}"),
        }
        assert_eq!(link.resends, 1);
        let got = fake.join().unwrap();
        assert_eq!(got[0], got[1], "the resend carries the same bytes");
    }

    /// a PD that faults never answers; the monitor says so on the console,
    /// and the request ends with that, not after the 30 s timeout.
    #[test]
    fn a_faulted_pd_fails_the_request_at_once_with_its_name() {
        let (host, mut sys) = UnixStream::pair().unwrap();
        let fake = std::thread::spawn(move || {
            let mut b = [0u8; 64];
            let _ = sys.read(&mut b).unwrap();
            sys.write_all(b"MON|ERROR: received message 0x00000006  badge: 0x0000000000000002  tcb cap: 0x8000000000003a\r\n").unwrap();
            sys.write_all(b"MON|ERROR: faulting PD: verifier\r\n").unwrap();
            sys.write_all(b"MON|ERROR: VMFault: ip=0x0000000000201234  fault_addr=0x000000000040f000  fsr=0x0000000093c08047  (data fault)\r\n").unwrap();
            // no reply ever comes; the stream stays open until the host closes it
            while sys.read(&mut b).is_ok_and(|n| n > 0) {}
        });
        let mut link = link_on(host);
        let t0 = Instant::now();
        match link.request(&Request::Status) {
            Err(ClientError::Fault(pd)) => assert_eq!(pd, "verifier"),
            other => panic!("{other:?}"),
        }
        assert!(t0.elapsed() < ATTEMPT_TIMEOUT * 2, "{:?}", t0.elapsed());
        // and every later request, without waiting at all
        let t1 = Instant::now();
        assert!(matches!(link.request(&Request::Status), Err(ClientError::Fault(_))));
        assert!(t1.elapsed() < Duration::from_millis(100));
        drop(link);
        let _ = fake.join();
    }

    #[test]
    fn tap_keeps_text_lines_and_skips_frame_bytes() {
        let (a, _b) = UnixStream::pair().unwrap();
        let mut t = tap(a);
        t.observe(b"Bootstrapping kernel\r\n\x00\x05\x01\x02\xff\n\x00MON|INFO: up\n");
        assert_eq!(t.take_lines(), vec!["Bootstrapping kernel".to_owned(), "MON|INFO: up".to_owned()]);
    }
}

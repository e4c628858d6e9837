//! host stand-ins for the two devices of the system: the link's UART
//! becomes a byte pipe to the host side, the timer becomes a host clock
//! that raises the timer PD's IRQ at its deadline.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use pd_runtime::hosted::IrqLine;

#[derive(Default)]
struct Pipe {
    bytes: Mutex<VecDeque<u8>>,
    cv: Condvar,
}

impl Pipe {
    fn push(&self, b: &[u8]) {
        let mut q = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        q.extend(b);
        drop(q);
        self.cv.notify_all();
    }
}

/// the UART as the link PD sees it on the hosted system.
pub struct HostUart {
    rx: Arc<Pipe>,
    tx: Arc<Pipe>,
}

impl pd_link::Uart for HostUart {
    fn read_byte(&mut self) -> Option<u8> {
        self.rx
            .bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }
    fn write_all(&mut self, bytes: &[u8]) {
        self.tx.push(bytes);
    }
}

/// the host end of the UART: what the host writes arrives at the link PD
/// with an interrupt; what the link PD sends is read here.
#[derive(Clone)]
pub struct UartWire {
    rx: Arc<Pipe>,
    tx: Arc<Pipe>,
    irq: Arc<Mutex<Option<Arc<IrqLine>>>>,
    closed: Arc<AtomicBool>,
}

impl UartWire {
    pub(crate) fn new() -> Self {
        Self {
            rx: Arc::default(),
            tx: Arc::default(),
            irq: Arc::new(Mutex::new(None)),
            closed: Arc::new(AtomicBool::new(false)),
        }
    }

    pub(crate) fn connect(&self, irq: Arc<IrqLine>) {
        *self.irq.lock().unwrap_or_else(|e| e.into_inner()) = Some(irq);
    }

    pub(crate) fn device(&self) -> HostUart {
        HostUart {
            rx: self.rx.clone(),
            tx: self.tx.clone(),
        }
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.tx.cv.notify_all();
    }

    /// send bytes to the link PD (raises its UART interrupt).
    pub fn write(&self, bytes: &[u8]) {
        self.rx.push(bytes);
        if let Some(irq) = self.irq.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            irq.raise();
        }
    }

    /// bytes the link PD sent, waiting up to `timeout`; empty on timeout.
    pub fn read(&self, buf: &mut [u8], timeout: Option<Duration>) -> io::Result<usize> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut q = self.tx.bytes.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if !q.is_empty() {
                let n = buf.len().min(q.len());
                for (dst, src) in buf.iter_mut().zip(q.drain(..n)) {
                    *dst = src;
                }
                return Ok(n);
            }
            if self.closed.load(Ordering::SeqCst) {
                return Ok(0);
            }
            q = match deadline {
                None => self.tx.cv.wait(q).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no reply from the link pd",
                        ));
                    }
                    self.tx
                        .cv
                        .wait_timeout(q, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }
}

/// a `Read + Write` stream over the UART wire: the hosted system's serial port.
pub struct LinkStream {
    wire: UartWire,
    timeout: Option<Duration>,
}

impl LinkStream {
    pub(crate) fn new(wire: UartWire, timeout: Option<Duration>) -> Self {
        Self { wire, timeout }
    }
}

impl io::Read for LinkStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.wire.read(buf, self.timeout)
    }
}

impl io::Write for LinkStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.wire.write(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Default)]
struct Alarm {
    deadline: Mutex<(Option<u64>, bool)>, // (deadline µs, shut down)
    cv: Condvar,
}

/// the host clock behind the timer PD's [`pd_timer::Clock`].
pub struct HostClock {
    start: Instant,
    alarm: Arc<Alarm>,
}

impl pd_timer::Clock for HostClock {
    fn now_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
    fn set_deadline(&mut self, deadline_us: u64) {
        let mut d = self
            .alarm
            .deadline
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        d.0 = Some(deadline_us);
        drop(d);
        self.alarm.cv.notify_all();
    }
}

/// the timer hardware: a thread that raises the IRQ when the deadline passes.
pub(crate) struct TimerDevice {
    start: Instant,
    alarm: Arc<Alarm>,
    irq: Arc<Mutex<Option<Arc<IrqLine>>>>,
}

impl TimerDevice {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            alarm: Arc::default(),
            irq: Arc::new(Mutex::new(None)),
        }
    }

    pub(crate) fn connect(&self, irq: Arc<IrqLine>) {
        *self.irq.lock().unwrap_or_else(|e| e.into_inner()) = Some(irq);
    }

    pub(crate) fn clock(&self) -> HostClock {
        HostClock {
            start: self.start,
            alarm: self.alarm.clone(),
        }
    }

    pub(crate) fn spawn(&self) -> io::Result<std::thread::JoinHandle<()>> {
        let (start, alarm, irq) = (self.start, self.alarm.clone(), self.irq.clone());
        std::thread::Builder::new()
            .name("dev-timer".into())
            .spawn(move || {
                let mut d = alarm.deadline.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if d.1 {
                        return;
                    }
                    match d.0 {
                        None => d = alarm.cv.wait(d).unwrap_or_else(|e| e.into_inner()),
                        Some(at) => {
                            let now =
                                u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                            if now >= at {
                                d.0 = None; // one shot, like CNTP_CVAL: the PD re-arms it
                                drop(d);
                                if let Some(irq) =
                                    irq.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
                                {
                                    irq.raise();
                                }
                                d = alarm.deadline.lock().unwrap_or_else(|e| e.into_inner());
                            } else {
                                d = alarm
                                    .cv
                                    .wait_timeout(d, Duration::from_micros(at - now))
                                    .unwrap_or_else(|e| e.into_inner())
                                    .0;
                            }
                        }
                    }
                }
            })
    }

    pub(crate) fn stop(&self) {
        let mut d = self
            .alarm
            .deadline
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        d.1 = true;
        drop(d);
        self.alarm.cv.notify_all();
    }
}

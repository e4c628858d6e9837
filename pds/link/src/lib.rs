//! link PD: the framed byte stream between the host and the verifier.
//!
//! holds: the PL011 UART (device region + IRQ 33) on seL4, a socket or pipe
//! behind the same [`Uart`] trait on the hosted system; the `link_verifier`
//! region. talks to: the verifier only (one PPC channel). it never decodes a
//! plan or a reply: it reassembles frames ([`pd_interface::frame`]: COBS,
//! CRC-32, length cap), hands each payload to the verifier, and frames the
//! answer. a dropped frame (bad CRC, bad encoding, too long) gets a framed
//! `BadFrame` error so the host never waits for an answer that will not come.
#![no_std]
#![cfg_attr(not(target_os = "none"), forbid(unsafe_code))]

#[cfg(target_os = "none")]
pub mod pl011;

use pd_interface::frame::{self, Deframer, Pushed, MAX_FRAME, MAX_PAYLOAD};
use pd_interface::link::{LinkError, Reply, OP_REQUEST};
use pd_runtime::{Channel, Handler, MessageInfo, Region, RegionError, RuntimeError, Unhandled};

/// PPC to the verifier.
pub const VERIFIER: Channel = pd_interface::manifest::link::channel::VERIFIER;
/// the UART interrupt (the board's PL011 IRQ).
pub const UART_IRQ: Channel = pd_interface::manifest::link::channel::UART_IRQ;

/// a byte-stream device.
pub trait Uart {
    /// a receive pass begins: clear the device's receive interrupt. called
    /// before the fifo is emptied, never after: a byte that lands after the
    /// last empty check must raise the interrupt again.
    fn rx_begin(&mut self) {}
    /// the next received byte, if one is waiting.
    fn read_byte(&mut self) -> Option<u8>;
    /// send bytes (blocks while the transmitter is full).
    fn write_all(&mut self, bytes: &[u8]);
}

/// what faults the link PD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPdError {
    /// an event it does not serve.
    Unhandled(Unhandled),
    /// the shared region is not mapped as the .system file says.
    Region(RegionError),
    /// the runtime refused (a .system mismatch).
    Runtime(RuntimeError),
}

impl From<Unhandled> for LinkPdError {
    fn from(e: Unhandled) -> Self {
        Self::Unhandled(e)
    }
}

impl From<RegionError> for LinkPdError {
    fn from(e: RegionError) -> Self {
        Self::Region(e)
    }
}

impl From<RuntimeError> for LinkPdError {
    fn from(e: RuntimeError) -> Self {
        Self::Runtime(e)
    }
}

/// the link.
pub struct Link<U: Uart> {
    uart: U,
    shared: Region,
    rx: Deframer<MAX_FRAME>,
    tx: [u8; MAX_FRAME],
    /// frames forwarded and frames dropped since boot.
    pub counters: (u64, u64),
}

impl<U: Uart> Link<U> {
    /// the Microkit `init`.
    pub fn init(uart: U, shared: Region) -> Self {
        Self {
            uart,
            shared,
            rx: Deframer::new(),
            tx: [0; MAX_FRAME],
            counters: (0, 0),
        }
    }

    fn send(&mut self, payload: &[u8]) {
        if let Ok(n) = frame::encode(payload, &mut self.tx) {
            // a leading delimiter: console text the kernel or a PD printed on
            // the same UART since the last frame ends there, as a dropped
            // frame, instead of merging into this one (docs/qemu.md)
            self.uart.write_all(&[0]);
            self.uart.write_all(self.tx.get(..n).unwrap_or(&[]));
        }
    }

    fn send_error(&mut self, e: LinkError) {
        let mut buf = [0u8; 16];
        if let Ok(used) = postcard::to_slice(&Reply::Error(e), &mut buf) {
            let n = used.len();
            self.send(buf.get(..n).unwrap_or(&[]));
        }
    }

    /// hand one payload to the verifier and frame its answer.
    fn forward(&mut self, len: usize) -> Result<(), LinkPdError> {
        pd_runtime::set_mr(0, len as u64)?;
        let reply = VERIFIER.pp_call(MessageInfo::new(OP_REQUEST, 1))?;
        let _ = reply;
        let n = pd_runtime::get_mr(0)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(usize::MAX);
        let mut out = [0u8; MAX_PAYLOAD];
        match out.get_mut(..n) {
            Some(buf) => {
                self.shared.read(0, buf)?;
                self.send(buf);
            }
            None => self.send_error(LinkError::TooLarge),
        }
        Ok(())
    }

    /// drain the receiver; forward every complete frame.
    pub fn drain(&mut self) -> Result<(), LinkPdError> {
        self.uart.rx_begin();
        while let Some(b) = self.uart.read_byte() {
            let got = match self.rx.push(b) {
                Pushed::Pending => continue,
                Pushed::Frame(p) if p.len() <= self.shared.len() => {
                    self.shared.write(0, p)?;
                    Some(p.len())
                }
                Pushed::Frame(_) | Pushed::Dropped(_) => None,
            };
            match got {
                Some(len) => {
                    self.counters.0 = self.counters.0.saturating_add(1);
                    self.forward(len)?;
                }
                None => {
                    self.counters.1 = self.counters.1.saturating_add(1);
                    self.send_error(LinkError::BadFrame);
                }
            }
        }
        Ok(())
    }
}

impl<U: Uart> Handler for Link<U> {
    type Error = LinkPdError;

    fn notified(&mut self, channel: Channel) -> Result<(), LinkPdError> {
        if channel != UART_IRQ {
            return Err(Unhandled::Notified(channel).into());
        }
        self.drain()?;
        UART_IRQ.irq_ack()?;
        Ok(())
    }
}

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    extern crate std;
    use super::*;
    use std::collections::VecDeque;
    use std::vec::Vec;

    /// qemu's PL011 receive interrupt: raised when a byte lands in an empty
    /// fifo, cleared by ICR. `arrivals` models bytes landing while the link
    /// drains (the host keeps writing).
    struct QemuPl011 {
        fifo: VecDeque<u8>,
        raised: bool,
        arrivals: VecDeque<u8>,
        sent: Vec<u8>,
    }

    impl QemuPl011 {
        fn land(&mut self, b: u8) {
            if self.fifo.is_empty() {
                self.raised = true;
            }
            self.fifo.push_back(b);
        }
    }

    impl Uart for QemuPl011 {
        fn rx_begin(&mut self) {
            self.raised = false;
        }
        fn read_byte(&mut self) -> Option<u8> {
            match self.fifo.pop_front() {
                Some(b) => Some(b),
                None => {
                    // the empty check is done: a byte may land right now
                    if let Some(b) = self.arrivals.pop_front() {
                        self.land(b);
                    }
                    None
                }
            }
        }
        fn write_all(&mut self, bytes: &[u8]) {
            self.sent.extend_from_slice(bytes);
        }
    }

    #[test]
    fn a_byte_landing_after_the_last_empty_check_raises_the_interrupt_again() {
        let uart = QemuPl011 {
            fifo: VecDeque::new(),
            raised: false,
            arrivals: VecDeque::new(),
            sent: Vec::new(),
        };
        let shared = pd_runtime::hosted::SharedMemory::new(4096).map(true);
        let mut link = Link::init(uart, shared);
        // garbage then a delimiter: one dropped frame, answered with an error
        for b in [7u8, 7, 0] {
            link.uart.land(b);
        }
        link.uart.arrivals.push_back(9);
        link.drain().ok();
        assert_eq!(link.counters, (0, 1));
        assert!(!link.uart.sent.is_empty(), "the bad frame is answered");
        // the late byte sits in the fifo: the interrupt must be up, or the
        // link would never hear from the host again
        assert_eq!(link.uart.fifo.len(), 1);
        assert!(link.uart.raised, "a waiting byte with the interrupt low");
    }
}

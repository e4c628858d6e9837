//! the ARM PL011 UART (qemu virt: 0x0900_0000, SPI 1 = INTID 33), polled
//! for transmit, interrupt-driven for receive.

use crate::Uart;

const DR: usize = 0x00;
const FR: usize = 0x18;
const LCR_H: usize = 0x2c;
const IMSC: usize = 0x38;
const ICR: usize = 0x44;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const LCR_H_FEN: u32 = 1 << 4;
const INT_RX: u32 = 1 << 4;
const INT_RT: u32 = 1 << 6;

/// the UART's registers, mapped uncached at `base` by the .system file.
pub struct Pl011 {
    base: usize,
}

impl Pl011 {
    /// take the UART at `base` (the `uart_base` setvar): unmask receive and
    /// receive-timeout interrupts. qemu's PL011 needs no baud setup.
    pub fn new(base: usize) -> Self {
        let u = Self { base };
        // clear every interrupt but receive: bytes that arrived before this PD
        // ran sit in the fifo with the receive interrupt raised, and qemu's
        // PL011 raises it again only when a new byte fits, so clearing it
        // here would leave a full fifo that never interrupts
        u.write(ICR, 0x7ff & !(INT_RX | INT_RT));
        // the 16-byte fifo (qemu raises receive at 1 byte regardless)
        u.write(LCR_H, u.read(LCR_H) | LCR_H_FEN);
        u.write(IMSC, INT_RX | INT_RT);
        u
    }

    fn read(&self, reg: usize) -> u32 {
        // safety: `base` is the PL011's 4 KiB device mapping (uncached, rw)
        // given by the .system file; `reg` is a register offset inside it,
        // aligned to 4; device registers need volatile access.
        unsafe { core::ptr::read_volatile((self.base + reg) as *const u32) }
    }

    fn write(&self, reg: usize, v: u32) {
        // safety: as in `read`.
        unsafe { core::ptr::write_volatile((self.base + reg) as *mut u32, v) }
    }
}

impl Uart for Pl011 {
    fn rx_begin(&mut self) {
        // qemu raises the receive interrupt only when a byte lands in an
        // empty fifo: cleared after the last empty check, a byte landing
        // in between would leave the interrupt low with data waiting, and
        // the link deaf for good. cleared here, before the fifo is emptied.
        self.write(ICR, INT_RX | INT_RT);
    }

    fn read_byte(&mut self) -> Option<u8> {
        if self.read(FR) & FR_RXFE != 0 {
            return None;
        }
        Some((self.read(DR) & 0xff) as u8)
    }

    fn write_all(&mut self, bytes: &[u8]) {
        for &b in bytes {
            while self.read(FR) & FR_TXFF != 0 {
                core::hint::spin_loop();
            }
            self.write(DR, u32::from(b));
        }
    }
}

//! firmware PD: a read-only inventory of the platform.
//!
//! holds: nothing but compiled-in platform facts of the board
//! (board/qemu-virt-aarch64: qemu `virt`, cortex-a53, 2 GiB at 0x4000_0000,
//! GICv2, PL011, PL031, the ARM generic timer). talks to: the verifier (PPC
//! in). it never writes anything. every string it returns is untrusted data
//! for whoever reads it: on real firmware it would come from a device tree
//! the system does not control, so consumers must not interpret it.
#![no_std]
#![forbid(unsafe_code)]

use board_qemu_virt_aarch64 as board;

use pd_interface::firmware::{Device, Inventory, MemoryRange, Query, Reply, Request, MAX_DEVICES};
use pd_interface::msg;
use pd_runtime::{Channel, Handler, MessageInfo, Unhandled};

/// PPCs from the verifier.
pub const VERIFIER: Channel = pd_interface::manifest::firmware::channel::VERIFIER;

/// one device of the board.
#[derive(Debug, Clone, Copy)]
pub struct DeviceFact {
    /// node name.
    pub name: &'static str,
    /// compatible string.
    pub compatible: &'static str,
    /// mmio base.
    pub base: u64,
    /// mmio size.
    pub size: u64,
    /// interrupt id (GIC INTID).
    pub irq: Option<u32>,
}

/// the board's facts.
#[derive(Debug, Clone, Copy)]
pub struct PlatformFacts {
    /// cpus the machine has (seL4 here runs on cpu 0).
    pub cpus: u8,
    /// cpu model.
    pub cpu_model: &'static str,
    /// ram ranges.
    pub memory: &'static [(u64, u64)],
    /// devices.
    pub devices: &'static [DeviceFact],
}

/// qemu `virt` as Microkit's qemu_virt_aarch64 board runs it (`-machine virt
/// -cpu cortex-a53 -m 2G`; memory map of qemu's hw/arm/virt.c).
pub const QEMU_VIRT_AARCH64: PlatformFacts = PlatformFacts {
    // the board crate is the one source for these numbers.
    cpus: board::CPUS as u8,
    cpu_model: "arm,cortex-a53",
    memory: &[(board::RAM_BASE, board::RAM_SIZE)],
    devices: &[
        DeviceFact {
            name: "intc@8000000",
            compatible: "arm,cortex-a15-gic",
            base: 0x0800_0000,
            size: 0x2_0000,
            irq: None,
        },
        DeviceFact {
            name: "pl011@9000000",
            compatible: "arm,pl011",
            base: board::UART_PADDR,
            size: board::UART_SIZE,
            irq: Some(board::UART_IRQ),
        },
        DeviceFact {
            name: "pl031@9010000",
            compatible: "arm,pl031",
            base: 0x0901_0000,
            size: 0x1000,
            irq: Some(34),
        },
        DeviceFact {
            name: "timer",
            compatible: "arm,armv8-timer",
            base: 0,
            size: 0,
            irq: Some(board::TIMER_PPI),
        },
    ],
};

/// what faults the firmware PD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirmwareError {
    /// an event it does not serve.
    Unhandled(Unhandled),
    /// a reply did not fit the message registers.
    Reply,
}

impl From<Unhandled> for FirmwareError {
    fn from(e: Unhandled) -> Self {
        Self::Unhandled(e)
    }
}

/// the inventory server.
pub struct Firmware {
    facts: PlatformFacts,
}

fn bounded<const N: usize>(s: &str) -> heapless::String<N> {
    // cut at a char boundary; facts longer than the wire allows are truncated
    let mut out = heapless::String::new();
    for c in s.chars() {
        if out.push(c).is_err() {
            break;
        }
    }
    out
}

impl Firmware {
    /// the Microkit `init`.
    pub const fn init(facts: PlatformFacts) -> Self {
        Self { facts }
    }

    /// the part of the inventory asked for.
    pub fn inventory(&self, q: Query) -> Inventory {
        let mut inv = Inventory::default();
        if matches!(q, Query::Cpus | Query::All) {
            inv.cpus = self.facts.cpus;
            inv.cpu_model = bounded(self.facts.cpu_model);
        }
        if matches!(q, Query::Memory | Query::All) {
            for &(base, size) in self.facts.memory {
                if inv.memory.push(MemoryRange { base, size }).is_err() {
                    break;
                }
            }
        }
        if matches!(q, Query::Devices | Query::All) {
            for d in self.facts.devices.iter().take(MAX_DEVICES) {
                let dev = Device {
                    name: bounded(d.name),
                    compatible: bounded(d.compatible),
                    base: d.base,
                    size: d.size,
                    irq: d.irq,
                };
                if inv.devices.push(dev).is_err() {
                    break;
                }
            }
        }
        inv
    }
}

impl Handler for Firmware {
    type Error = FirmwareError;

    fn protected(
        &mut self,
        channel: Channel,
        msg_info: MessageInfo,
    ) -> Result<MessageInfo, FirmwareError> {
        if channel != VERIFIER {
            return Err(Unhandled::Protected(channel).into());
        }
        let reply = match msg::get::<Request>(msg_info) {
            Ok(Request::Inventory(q)) => Reply::Inventory(self.inventory(q)),
            Err(_) => Reply::BadRequest,
        };
        msg::put(&reply).map_err(|_| FirmwareError::Reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inventory_parts_are_selected() {
        let f = Firmware::init(QEMU_VIRT_AARCH64);
        let cpus = f.inventory(Query::Cpus);
        assert_eq!(
            (cpus.cpus, cpus.memory.len(), cpus.devices.len()),
            (1, 0, 0)
        );
        let all = f.inventory(Query::All);
        assert_eq!(all.memory.len(), 1);
        assert!(all
            .devices
            .iter()
            .any(|d| d.compatible == "arm,pl011" && d.irq == Some(33)));
    }

    #[test]
    fn the_whole_inventory_fits_one_ppc_message() {
        let f = Firmware::init(QEMU_VIRT_AARCH64);
        let mut buf = [0u8; pd_runtime::MSG_MAX_BYTES];
        assert!(postcard::to_slice(&Reply::Inventory(f.inventory(Query::All)), &mut buf).is_ok());
    }

    #[test]
    fn long_strings_are_truncated_not_rejected() {
        let s: heapless::String<4> = bounded("abcdefgh");
        assert_eq!(s.as_str(), "abcd");
    }
}

//! the qemu command line for this board, for humans (`-serial mon:stdio`)
//! and for llmsh (the PL011 on a unix socket). it is the SDK manual's line
//! for qemu_virt_aarch64 with the serial port made explicit:
//!
//! ```text
//! qemu-system-aarch64 -machine virt,virtualization=on -cpu cortex-a53 -m size=2G
//!     -device loader,file=loader.img,addr=0x70000000,cpu-num=0 -display none
//!     (-serial mon:stdio | -chardev socket,id=link,path=S,server=on,wait=on -serial chardev:link -monitor none)
//! ```
//!
//! `virtualization=on` because the SDK's kernel runs at EL2
//! (`KernelArmHypervisorSupport`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{CPUS, LOADER_ADDR, RAM_SIZE};

/// the qemu binary's name.
pub const QEMU: &str = "qemu-system-aarch64";

/// the qemu to run: `$QEMU_SYSTEM_AARCH64` if set, else the first
/// `qemu-system-aarch64` on `PATH`; `None` when there is none.
pub fn find_qemu() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("QEMU_SYSTEM_AARCH64").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(QEMU))
        .find(|p| p.is_file())
}

/// where the PL011 (the link and the debug console) goes.
#[derive(Debug, Clone)]
pub enum Serial {
    /// the terminal, with qemu's monitor on `ctrl-a c` (for humans).
    Stdio,
    /// a unix socket qemu listens on; qemu waits for the first client
    /// before it starts the guest, so no boot output is lost, and accepts
    /// a new client after one disconnects (llmsh attaches again).
    Socket(PathBuf),
}

/// the arguments after the binary's name.
pub fn args(loader: &Path, serial: &Serial) -> Vec<OsString> {
    let mut a: Vec<OsString> = [
        "-machine",
        "virt,virtualization=on",
        "-cpu",
        "cortex-a53",
        "-smp",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    a.push(CPUS.to_string().into());
    a.push("-m".into());
    a.push(format!("size={}M", RAM_SIZE >> 20).into());
    a.push("-display".into());
    a.push("none".into());
    a.push("-device".into());
    let mut dev = OsString::from("loader,file=");
    dev.push(loader.as_os_str());
    dev.push(format!(",addr={LOADER_ADDR:#x},cpu-num=0"));
    a.push(dev);
    match serial {
        Serial::Stdio => {
            a.extend(["-serial", "mon:stdio"].map(OsString::from));
        }
        Serial::Socket(path) => {
            let mut chardev = OsString::from("socket,id=link,path=");
            chardev.push(path.as_os_str());
            chardev.push(",server=on,wait=on");
            a.push("-chardev".into());
            a.push(chardev);
            a.extend(["-serial", "chardev:link", "-monitor", "none"].map(OsString::from));
        }
    }
    a
}

/// qemu's gdb stub on a unix socket, not waiting for a debugger: for
/// `gdb-multiarch` (`target remote <path>`) and for the qemu test, which
/// writes guest memory through it to make a worker fault.
pub fn gdb_args(path: &Path) -> Vec<OsString> {
    let mut dev = OsString::from("unix:");
    dev.push(path.as_os_str());
    dev.push(",server=on,wait=off");
    vec!["-gdb".into(), dev]
}

/// the command, ready to spawn.
pub fn command(qemu: &Path, loader: &Path, serial: &Serial) -> Command {
    let mut c = Command::new(qemu);
    c.args(args(loader, serial));
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_command_line_keeps_the_manual_parts() {
        let a: Vec<String> = args(Path::new("/x/loader.img"), &Serial::Socket("/r/link.sock".into()))
            .into_iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let line = a.join(" ");
        assert!(line.contains("-machine virt,virtualization=on -cpu cortex-a53"));
        assert!(line.contains("-m size=2048M"));
        assert!(line.contains("loader,file=/x/loader.img,addr=0x70000000,cpu-num=0"));
        assert!(line.contains("socket,id=link,path=/r/link.sock,server=on,wait=on -serial chardev:link"));
    }
}

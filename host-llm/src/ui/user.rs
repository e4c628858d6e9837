//! who is asking: the OS user of this process, for the audit log. the uid
//! comes from the kernel (the owner of `/proc/self`), the name from the
//! password database; neither comes from the environment, which any caller
//! can set.

use std::io::Read;
use std::os::unix::fs::MetadataExt;

/// the password database is read through this cap.
const PASSWD_CAP: u64 = 4 << 20;

/// this process's uid, if the kernel tells it.
pub fn uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// the login name of `uid` in a passwd-format text.
pub fn name_in(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _pw = f.next()?;
        let id: u32 = f.next()?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_string())
    })
}

/// the name of this process's user: the passwd name of its uid, else
/// `uid:N`, else `unknown`; never empty.
pub fn name() -> String {
    let Some(id) = uid() else { return "unknown".into() };
    let mut text = String::new();
    let read = std::fs::File::open("/etc/passwd")
        .and_then(|f| f.take(PASSWD_CAP).read_to_string(&mut text));
    match read.ok().and_then(|_| name_in(&text, id)) {
        Some(n) => n,
        None => format!("uid:{id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_uid_field() {
        let pw = "root:x:0:0:root:/root:/bin/bash\nbroken line\nann:x:1000:1000::/home/ann:/bin/sh\n";
        assert_eq!(name_in(pw, 0).as_deref(), Some("root"));
        assert_eq!(name_in(pw, 1000).as_deref(), Some("ann"));
        assert_eq!(name_in(pw, 7), None);
    }

    #[test]
    fn this_process_has_a_name() {
        assert!(!name().is_empty());
    }
}

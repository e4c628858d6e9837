//! who may use which session: the policy's `users` lists, resolved to uids
//! once when the daemon starts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use policy_verifier::json::InputError;
use policy_verifier::policy_file::PolicyFile;

use crate::common::{self, Input};

/// the default policy file's text (system/policy.toml).
pub const DEFAULT_POLICY_TOML: &str = include_str!("../../../system/policy.toml");

/// session name -> the uids that may use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUsers {
    sessions: BTreeMap<String, BTreeSet<u32>>,
}

impl SessionUsers {
    /// from the policy file at `path` (default: the built-in one), with
    /// `owner` as every session's user where `users` is absent. a name that
    /// is not a user of this machine is an error, not a silent no-one.
    pub fn load(path: Option<&Path>, owner: u32) -> Result<SessionUsers, InputError> {
        let text = match path {
            None => DEFAULT_POLICY_TOML.to_owned(),
            Some(p) => String::from_utf8(common::read_input(p, Input::Policy)?)
                .map_err(|_| crate::code::Code::PolicySyntax.err("the policy is not utf-8"))?,
        };
        Self::from_text(&text, owner)
    }

    /// [`SessionUsers::load`] of a policy file's text.
    pub fn from_text(text: &str, owner: u32) -> Result<SessionUsers, InputError> {
        let file: PolicyFile = toml::from_str(text)
            .map_err(|e| crate::code::Code::PolicySyntax.err(e.to_string().trim().to_lowercase()))?;
        let passwd = Passwd::read();
        let mut sessions = BTreeMap::new();
        for (name, s) in &file.sessions {
            let uids = match &s.users {
                None => BTreeSet::from([owner]),
                Some(list) => list
                    .iter()
                    .map(|u| {
                        passwd.uid(u).ok_or_else(|| {
                            crate::code::Code::PolicyInvalid.err(format!("session `{name}`: `{u}` is neither a user name of this machine nor a uid"),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
            };
            sessions.insert(name.clone(), uids);
        }
        Ok(SessionUsers { sessions })
    }

    /// the sessions `uid` may use.
    pub fn sessions_of(&self, uid: u32) -> Vec<&str> {
        self.sessions.iter().filter(|(_, u)| u.contains(&uid)).map(|(n, _)| n.as_str()).collect()
    }

    /// may `uid` use `session`?
    pub fn may_use(&self, uid: u32, session: &str) -> bool {
        self.sessions.get(session).is_some_and(|u| u.contains(&uid))
    }
}

/// /etc/passwd, read through a size cap: names to uids and back.
#[derive(Debug, Default)]
pub struct Passwd {
    entries: Vec<(String, u32)>,
}

impl Passwd {
    /// the machine's user table (empty if unreadable: uids still work).
    pub fn read() -> Passwd {
        let text = std::fs::File::open("/etc/passwd")
            .ok()
            .and_then(|f| common::read_capped(f, Input::Corpus, "/etc/passwd").ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        Passwd::parse(&text)
    }

    fn parse(text: &str) -> Passwd {
        let entries = text
            .lines()
            .filter_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let uid = f.nth(1)?.parse().ok()?;
                Some((name.to_owned(), uid))
            })
            .collect();
        Passwd { entries }
    }

    /// a user name's uid, or a numeric uid as given.
    pub fn uid(&self, user: &str) -> Option<u32> {
        if let Ok(n) = user.parse() {
            return Some(n);
        }
        self.entries.iter().find(|(n, _)| n == user).map(|(_, u)| *u)
    }

    /// a uid's user name, else the uid in decimal.
    pub fn name(&self, uid: u32) -> String {
        self.entries.iter().find(|(_, u)| *u == uid).map_or_else(|| uid.to_string(), |(n, _)| n.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_users_only_the_owner_may_use_a_session() {
        let u = SessionUsers::load(None, 4242).unwrap();
        assert!(u.may_use(4242, "ops"));
        assert!(!u.may_use(4243, "ops"));
        assert!(!u.may_use(4242, "nosuch"));
        assert_eq!(u.sessions_of(4242), ["admin", "ops", "viewer"]);
        assert!(u.sessions_of(0).is_empty());
    }

    #[test]
    fn a_users_list_names_exactly_who_may() {
        let dir = std::env::temp_dir().join(format!("osd-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("policy.toml");
        let text = DEFAULT_POLICY_TOML.replace(
            "[sessions.admin]\n",
            "[sessions.admin]\nusers = [\"root\", \"1234\"]\n",
        );
        std::fs::write(&p, text).unwrap();
        let u = SessionUsers::load(Some(&p), 4242).unwrap();
        assert!(u.may_use(0, "admin") && u.may_use(1234, "admin"));
        assert!(!u.may_use(4242, "admin"), "the list replaces the default");
        assert!(u.may_use(4242, "ops"));
        let bad = DEFAULT_POLICY_TOML.replace("[sessions.admin]\n", "[sessions.admin]\nusers = [\"no-such-user-x\"]\n");
        std::fs::write(&p, bad).unwrap();
        assert_eq!(SessionUsers::load(Some(&p), 4242).unwrap_err().code, "policy.invalid");
    }

    #[test]
    fn passwd_lines_map_names_and_uids() {
        let p = Passwd::parse("root:x:0:0:root:/root:/bin/sh\nalice:x:1001:1001::/home/alice:/bin/sh\nbroken\n");
        assert_eq!(p.uid("alice"), Some(1001));
        assert_eq!(p.uid("77"), Some(77));
        assert_eq!(p.uid("bob"), None);
        assert_eq!(p.name(0), "root");
        assert_eq!(p.name(5), "5");
    }
}

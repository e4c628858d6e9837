//! every error code the cli prints (`{"error":{"code":…}}`), in one table:
//! each with its class, which alone decides the exit code, and one line
//! saying what it means. docs/architecture.md lists the same table, and a
//! test holds the two equal.
//!
//! the json front end's codes (`json.*`, `plan.*`, `state.*`, `policy.*`,
//! `wire.*`) are made in policy-verifier, which cannot see this crate; they
//! are listed here too, and a test reads policy-verifier's sources for
//! codes this table lacks.

use policy_verifier::json::InputError;

/// exit codes of DESIGN.md: 0 approved / ok, 1 rejected / failed, 2 bad
/// input, 3 the machinery failed. an error's exit code comes from its
/// code's class (`Code::class`), never from the call site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// approved, proved, done.
    Ok = 0,
    /// rejected by the verifier, or a proof failed.
    Rejected = 1,
    /// the input is not a well-formed plan, state, policy or key.
    BadInput = 2,
    /// the machinery failed: no system running, boot, link, llm, network.
    Machinery = 3,
}

/// what kind of failure a code is: it decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// the policy or the human refused (exit 1).
    Refused,
    /// the input is malformed or the request cannot be met as asked (exit 2).
    BadInput,
    /// the machinery failed: no system running, boot, link, daemon, llm,
    /// network (exit 3).
    Machinery,
}

impl Class {
    /// the exit code of DESIGN.md.
    pub const fn exit(self) -> Exit {
        match self {
            Class::Refused => Exit::Rejected,
            Class::BadInput => Exit::BadInput,
            Class::Machinery => Exit::Machinery,
        }
    }
}

macro_rules! codes {
    ($( $(#[doc = $doc:literal])* $variant:ident = $name:literal, $class:ident; )*) => {
        /// an error code of the cli.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Code {
            /// every code, in table order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// the stable name, e.g. `system.down`.
            pub const fn name(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }

            /// refused, bad input or machinery.
            pub const fn class(self) -> Class {
                match self { $(Code::$variant => Class::$class,)* }
            }

            /// one line saying what it means (the doc comment).
            pub const fn meaning(self) -> &'static str {
                match self { $(Code::$variant => concat!($($doc),*).trim_ascii(),)* }
            }
        }
    };
}

codes! {
    // refused (1)
    /// the human did not confirm the destructive actions; nothing ran
    ApplyDeclined = "apply.declined", Refused;
    /// this user may not use the plan's session (policy `users`), or may not stop llm-osd
    AuthUser = "auth.user", Refused;
    /// the planned plan is not what the intent asks; nothing ran
    PlanUnfaithful = "plan.unfaithful", Refused;
    /// the session's token budget for the planner is spent
    BudgetTokens = "budget.tokens", Refused;

    // bad input (2)
    /// a flag or argument is malformed, or flags conflict
    Args = "args", BadInput;
    /// the command line does not parse
    CliUsage = "cli.usage", BadInput;
    /// an input file cannot be read
    Io = "io", BadInput;
    /// a plan input is more than 64 KiB
    PlanSize = "plan.size", BadInput;
    /// a plan is not json
    PlanSyntax = "plan.syntax", BadInput;
    /// a plan's `version` is not 1
    PlanVersion = "plan.version", BadInput;
    /// a plan does not fit the wire format the verifier reads
    PlanEncode = "plan.encode", BadInput;
    /// a state input is more than 64 KiB
    StateSize = "state.size", BadInput;
    /// a state is not json
    StateSyntax = "state.syntax", BadInput;
    /// a state breaks a state invariant of the policy
    StateInvariant = "state.invariant", BadInput;
    /// a state lacks a worker
    StateMissingWorker = "state.missing_worker", BadInput;
    /// a state names a worker the system does not have
    StateUnknownWorker = "state.unknown_worker", BadInput;
    /// a state disagrees with the policy (pool size, values out of range)
    StatePolicy = "state.policy", BadInput;
    /// a policy file is more than 64 KiB
    PolicySize = "policy.size", BadInput;
    /// a policy file is not toml of the policy's shape
    PolicySyntax = "policy.syntax", BadInput;
    /// a policy file's values or invariants are invalid
    PolicyInvalid = "policy.invalid", BadInput;
    /// the policy asked for is not the one a qemu image enforces (it compiles its policy in)
    PolicyImage = "policy.image", BadInput;
    /// a json input is malformed
    JsonSyntax = "json.syntax", BadInput;
    /// a json value has the wrong type
    JsonType = "json.type", BadInput;
    /// a json string or number is longer than its field allows
    JsonTooLong = "json.too_long", BadInput;
    /// a json object has a field the format does not define
    JsonUnknownField = "json.unknown_field", BadInput;
    /// a json object lacks a field the format requires
    JsonMissingField = "json.missing_field", BadInput;
    /// a json object has a field twice
    JsonDuplicateField = "json.duplicate_field", BadInput;
    /// an action's `op` is not an op of the plan format
    JsonUnknownOp = "json.unknown_op", BadInput;
    /// an action's `pd` is not a worker of the system
    JsonUnknownPd = "json.unknown_pd", BadInput;
    /// a `firmware.inventory` query is not one of cpus, memory, devices, all
    JsonUnknownQuery = "json.unknown_query", BadInput;
    /// plan wire bytes do not decode
    WireMalformed = "wire.malformed", BadInput;
    /// plan wire bytes are not the canonical encoding
    WireNonCanonical = "wire.non_canonical", BadInput;
    /// plan wire bytes are more than the verifier reads
    WireTooLarge = "wire.too_large", BadInput;
    /// plan wire bytes go on after the plan
    WireTrailingBytes = "wire.trailing_bytes", BadInput;
    /// a key file is not 64 hex digits of mode 0600
    KeyInvalid = "key.invalid", BadInput;
    /// `llmsh keygen` would replace existing keys without `--force`
    KeyExists = "key.exists", BadInput;
    /// the plan's session is not in the policy
    SessionUnknown = "session.unknown", BadInput;
    /// the intent is empty
    IntentEmpty = "intent.empty", BadInput;
    /// the intent asks for no action the system can take
    IntentNoAction = "intent.no_action", BadInput;
    /// a `prove --query` expression does not parse
    QuerySyntax = "query.syntax", BadInput;
    /// a `prove --op` names no op
    QueryUnknownOp = "query.unknown_op", BadInput;
    /// a corpus input is more than 4 MiB
    CorpusSize = "corpus.size", BadInput;
    /// a red-team corpus file does not parse
    RedteamCorpus = "redteam.corpus", BadInput;
    /// a bench corpus line does not parse
    BenchSyntax = "bench.syntax", BadInput;
    /// `--shard` is not i/n with 0 <= i < n
    BenchShard = "bench.shard", BadInput;
    /// bench shard reports cannot be merged (another set, model or defense, or unreadable)
    BenchMerge = "bench.merge", BadInput;
    /// a file given to `bench-report` is not a bench or red-team json report
    BenchReport = "bench.report", BadInput;
    /// the planner backend asked for is not configured or not built in
    BackendConfig = "backend.config", BadInput;
    /// the running llm-osd writes another audit log than the one asked for
    AuditLog = "audit.log", BadInput;
    /// a request to llm-osd is not one json object with an id and a known op
    OsdBadRequest = "osd.bad_request", BadInput;
    /// a request line to llm-osd is longer than 1 MiB
    OsdTooLong = "osd.too_long", BadInput;
    /// a request line to llm-osd was not finished in time
    OsdPartial = "osd.partial", BadInput;

    // machinery (3)
    /// no system is running (no llm-osd); nothing ran
    SystemDown = "system.down", Machinery;
    /// the running system is another one than asked for (hosted or qemu)
    SystemOther = "system.other", Machinery;
    /// the system did not boot, or did not answer in time after booting
    SystemBoot = "system.boot", Machinery;
    /// a PD of the system faulted (on seL4 the monitor reports it); reboot the system
    SystemPdFault = "system.pd_fault", Machinery;
    /// llm-osd did not stop in time
    SystemStop = "system.stop", Machinery;
    /// the .system manifest is unreadable or breaks a Microkit rule
    SystemManifest = "system.manifest", Machinery;
    /// no Microkit SDK to build the seL4 image (`MICROKIT_SDK`)
    SystemNoSdk = "system.no_sdk", Machinery;
    /// the seL4 image could not be built
    SystemImage = "system.image", Machinery;
    /// no qemu-system-aarch64 (`QEMU_SYSTEM_AARCH64` or PATH)
    SystemNoQemu = "system.no_qemu", Machinery;
    /// the link to the system failed (i/o, closed, a reply that does not decode)
    LinkIo = "link.io", Machinery;
    /// the system refused a request before verification (too large, a PD unavailable, a bad frame)
    LinkRefused = "link.refused", Machinery;
    /// the system answered with another reply than the request's
    LinkReply = "link.reply", Machinery;
    /// this host's keys cannot be read or made
    KeyUnavailable = "key.unavailable", Machinery;
    /// talking to llm-osd failed
    OsdIo = "osd.io", Machinery;
    /// llm-osd's reply does not decode
    OsdReply = "osd.reply", Machinery;
    /// llm-osd could not encode its reply
    OsdEncode = "osd.encode", Machinery;
    /// llm-osd's queue is full; try again
    OsdBusy = "osd.busy", Machinery;
    /// llm-osd is stopping
    OsdStopping = "osd.stopping", Machinery;
    /// the system did not answer llm-osd in time
    OsdTimeout = "osd.timeout", Machinery;
    /// the runtime dir or socket is not private to this user
    OsdRuntimeDir = "osd.runtime_dir", Machinery;
    /// an llm-osd already serves this user
    OsdRunning = "osd.running", Machinery;
    /// llm-osd cannot listen on its socket
    OsdSocket = "osd.socket", Machinery;
    /// llm-osd cannot start its link thread
    OsdThread = "osd.thread", Machinery;
    /// llm-osd cannot start its async runtime
    OsdRuntime = "osd.runtime", Machinery;
    /// the audit log cannot be read or written
    AuditIo = "audit.io", Machinery;
    /// the audit key cannot be read or made, or is not private
    AuditKey = "audit.key", Machinery;
    /// the audit head file is forged or edited
    AuditHead = "audit.head", Machinery;
    /// an audit log line is not json
    AuditCorrupt = "audit.corrupt", Machinery;
    /// the audit log's sequence number is at its maximum; nothing ran
    AuditFull = "audit.full", Machinery;
    /// the red-team report cannot be written
    RedteamOut = "redteam.out", Machinery;
    /// no planner attempt produced a plan
    PlanNone = "plan.none", Machinery;
    /// the model's draft is not json
    DraftSyntax = "draft.syntax", Machinery;
    /// the model's draft is not a json object
    DraftType = "draft.type", Machinery;
    /// the model's draft has a field the plan format does not define
    DraftUnknownField = "draft.unknown_field", Machinery;
    /// the model could not be fetched or failed its hash check
    ModelDownload = "model.download", Machinery;
    /// the model could not be loaded or run
    ModelLoad = "model.load", Machinery;
    /// the remote endpoint refused or did not take the connection
    RemoteConnect = "remote.connect", Machinery;
    /// the remote endpoint did not answer within `--remote-timeout`
    RemoteTimeout = "remote.timeout", Machinery;
    /// planning with the remote endpoint went past `--remote-deadline`
    RemoteDeadline = "remote.deadline", Machinery;
    /// the remote endpoint answered with an http error
    RemoteHttp = "remote.http", Machinery;
    /// the remote endpoint's answer is larger than the cap
    RemoteTooLarge = "remote.too_large", Machinery;
    /// the remote endpoint's answer is not json
    RemoteJson = "remote.json", Machinery;
    /// the remote endpoint's json is not a chat completion
    RemoteShape = "remote.shape", Machinery;
    /// the terminal cannot be set up or drawn on (`top`, the shell), or stdout cannot be written (`man`)
    Terminal = "terminal", Machinery;
}

impl Code {
    /// the code called `name`.
    pub fn from_name(name: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.name() == name)
    }

    /// the exit code it ends llmsh with.
    pub const fn exit(self) -> Exit {
        self.class().exit()
    }

    /// an error of this code.
    pub fn err(self, message: impl Into<String>) -> InputError {
        InputError::new(self.name(), message)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// the exit code of the code called `name`; a name outside the table (a
/// daemon of another build) is the machinery's failure.
pub fn exit_of(name: &str) -> Exit {
    Code::from_name(name).map_or(Exit::Machinery, Code::exit)
}

/// the table of docs/architecture.md, one row per code.
pub fn table() -> String {
    let mut s = String::from("| code | exit | meaning |\n|---|---|---|\n");
    for c in Code::ALL {
        s.push_str(&format!("| `{}` | {} | {} |\n", c.name(), c.exit() as i32, c.meaning()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_have_a_meaning() {
        let mut seen = std::collections::BTreeSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.name()), "{} twice", c.name());
            assert_eq!(Code::from_name(c.name()), Some(*c));
            assert!(!c.meaning().is_empty(), "{c:?}");
        }
        assert_eq!(exit_of("no.such_code"), Exit::Machinery);
        assert_eq!(exit_of("system.down"), Exit::Machinery);
        assert_eq!(exit_of("plan.syntax"), Exit::BadInput);
        assert_eq!(exit_of("apply.declined"), Exit::Rejected);
    }

    #[test]
    fn docs_architecture_lists_every_code_with_its_exit() {
        let doc = include_str!("../../docs/architecture.md");
        let table = table();
        assert!(
            doc.contains(&table),
            "docs/architecture.md must hold the error-code table exactly as host-llm/src/code.rs makes it:\n{table}"
        );
    }

    #[test]
    fn every_code_policy_verifier_makes_is_in_the_table() {
        // policy-verifier cannot name this crate's enum: its codes are
        // string literals, read here from its sources
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy-verifier/src");
        let mut missing = Vec::new();
        for f in ["json.rs", "wire.rs", "policy_file.rs"] {
            let text = std::fs::read_to_string(dir.join(f)).expect("policy-verifier source");
            for (i, _) in text.match_indices("InputError::new(").chain(text.match_indices("=> \"")) {
                let rest = &text[i..];
                let Some(q) = rest.find('"') else { continue };
                let name: String = rest[q + 1..].chars().take_while(|c| *c != '"').collect();
                if name.contains('.') && !name.contains(' ') && Code::from_name(&name).is_none() {
                    missing.push(format!("{f}: {name}"));
                }
            }
        }
        assert!(missing.is_empty(), "codes policy-verifier makes but code.rs lacks: {missing:?}");
    }
}

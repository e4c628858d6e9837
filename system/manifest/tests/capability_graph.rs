//! the capability-graph property of system/llm-os.system, checked from the
//! parsed file: from `link`, every path to a capability PD passes through
//! `verifier`. each negative fixture in system/fixtures must fail with a
//! precise error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, reason = "tests")]

use system_manifest::graph::{self, check_capability_graph, llm_os_roles, Edge, GraphError};
use system_manifest::sdf::{self, SdfError};

fn load(rel: &str) -> Result<sdf::SystemDescription, SdfError> {
    let path = format!("{}/../{rel}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    sdf::parse(&text)
}

#[test]
fn llm_os_system_passes_the_capability_graph_check() {
    let sys = load("llm-os.system").expect("llm-os.system parses");
    check_capability_graph(&sys, &llm_os_roles(&sys))
        .expect("every path from link to a capability PD passes verifier");
}

#[test]
fn the_capability_pds_are_read_off_the_system() {
    let sys = load("llm-os.system").unwrap();
    let mut caps = llm_os_roles(&sys).capability;
    caps.sort();
    assert_eq!(caps, ["firmware", "memory", "process", "timer"]);
}

#[test]
fn llm_os_system_priorities_follow_the_design() {
    let sys = load("llm-os.system").unwrap();
    let prio = |n: &str| sys.pd(n).unwrap_or_else(|| panic!("pd {n}")).priority;
    let workers = ["worker0", "worker1", "worker2", "worker3"];
    let system_pds = ["link", "verifier", "timer", "memory", "process", "firmware"];
    for w in workers {
        assert!(prio(w) <= 100, "{w} above 100");
        assert_eq!(
            sys.pd(w).unwrap().parent,
            sys.pd_index("process"),
            "{w} is a child of process"
        );
        for s in system_pds {
            assert!(prio(w) < prio(s), "{w} not below {s}");
        }
    }
    for c in ["timer", "memory", "process", "firmware"] {
        assert!(prio("link") < prio("verifier") && prio("verifier") < prio(c));
    }
}

#[test]
fn link_talks_to_nothing_but_verifier() {
    let sys = load("llm-os.system").unwrap();
    let link = sys.pd_index("link").unwrap();
    let verifier = sys.pd_index("verifier").unwrap();
    let neighbours: Vec<_> = graph::edges(&sys)
        .into_iter()
        .filter(|(a, _, _)| *a == link)
        .map(|(_, b, _)| b)
        .collect();
    assert!(!neighbours.is_empty());
    assert!(neighbours.iter().all(|b| *b == verifier), "{neighbours:?}");
}

#[test]
fn link_to_memory_channel_is_a_bypass() {
    let sys = load("fixtures/link-to-memory.system").unwrap();
    let err = check_capability_graph(&sys, &llm_os_roles(&sys)).unwrap_err();
    assert_eq!(
        err,
        GraphError::Bypass {
            target: "memory".into(),
            path: vec![(
                "link".into(),
                Edge::Channel {
                    from_id: 2,
                    to_id: 5,
                    pp: true
                },
                "memory".into()
            )],
        }
    );
    assert_eq!(
        err.to_string(),
        "capability PD `memory` is reachable from `link` without passing through the verifier: \
         link -[ppc channel 2<->5]-> memory"
    );
}

#[test]
fn link_mapping_the_pool_is_a_bypass() {
    let sys = load("fixtures/link-maps-pool.system").unwrap();
    let err = check_capability_graph(&sys, &llm_os_roles(&sys)).unwrap_err();
    assert_eq!(
        err,
        GraphError::Bypass {
            target: "memory".into(),
            path: vec![(
                "link".into(),
                Edge::SharedRegion("pool".into()),
                "memory".into()
            )],
        }
    );
}

#[test]
fn link_reaching_a_worker_is_a_bypass_through_it() {
    let sys = load("fixtures/link-notifies-worker.system").unwrap();
    match check_capability_graph(&sys, &llm_os_roles(&sys)).unwrap_err() {
        GraphError::Bypass { target, path } => {
            assert!(
                ["timer", "memory", "process"].contains(&target.as_str()),
                "{target}"
            );
            assert_eq!(path.len(), 2, "{path:?}");
            assert_eq!(
                path[0],
                (
                    "link".into(),
                    Edge::Channel {
                        from_id: 3,
                        to_id: 5,
                        pp: false
                    },
                    "worker0".into()
                )
            );
            assert_eq!(path[1].2, target);
        }
        other => panic!("expected a bypass, got {other}"),
    }
}

#[test]
fn ppc_into_a_capability_pd_from_a_worker_is_refused() {
    let sys = load("fixtures/worker-ppc-firmware.system").unwrap();
    assert_eq!(
        check_capability_graph(&sys, &llm_os_roles(&sys)).unwrap_err(),
        GraphError::ForeignPpc {
            caller: "worker1".into(),
            callee: "firmware".into()
        }
    );
}

#[test]
fn ppc_to_a_lower_priority_is_refused_at_parse() {
    let err = load("fixtures/link-above-verifier.system").unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 116: PPCs must be to protection domains of strictly higher priorities; channel with PPC exists from pd \
         `link` (priority: 170) to pd `verifier` (priority: 160)"
    );
}

#[test]
fn a_system_without_the_verifier_fails_the_check() {
    let sys = load("fixtures/no-verifier.system").unwrap();
    assert_eq!(
        check_capability_graph(&sys, &llm_os_roles(&sys)).unwrap_err(),
        GraphError::MissingPd("verifier".into())
    );
}

#[test]
fn parser_rejects_what_microkit_rejects() {
    let cases = [
        ("<system><protection_domain name=\"a\" prio=\"1\"><program_image path=\"a\"/></protection_domain></system>",
         "line 1: element `protection_domain` has no attribute `prio`"),
        ("<system><thing/></system>", "line 1: unknown element `thing`"),
        ("<system><protection_domain name=\"a\" priority=\"255\"><program_image path=\"a\"/></protection_domain></system>",
         "line 1: `protection_domain` attribute `priority` has bad value `255`: priorities are 0..=254"),
        ("<system><protection_domain name=\"a\"><program_image path=\"a\"/></protection_domain>\
          <protection_domain name=\"a\"><program_image path=\"b\"/></protection_domain></system>",
         "line 1: duplicate protection domain name `a`"),
        ("<system><protection_domain name=\"a\"><program_image path=\"a\"/></protection_domain>\
          <protection_domain name=\"b\" priority=\"3\"><program_image path=\"b\"/></protection_domain>\
          <channel><end pd=\"a\" id=\"1\" pp=\"true\"/><end pd=\"b\" id=\"1\" pp=\"true\"/></channel></system>",
         "line 1: cannot ppc bidirectionally"),
        ("<system><protection_domain name=\"a\"><program_image path=\"a\"/><map mr=\"nope\" vaddr=\"0x1000\"/></protection_domain></system>",
         "line 1: pd `a` maps unknown memory region `nope`"),
        ("<system><protection_domain name=\"a\"><program_image path=\"a\"/><irq irq=\"3\" id=\"1\"/></protection_domain>\
          <protection_domain name=\"b\"><program_image path=\"b\"/></protection_domain>\
          <channel><end pd=\"a\" id=\"1\"/><end pd=\"b\" id=\"1\"/></channel></system>",
         "line 1: pd `a` uses channel id 1 twice"),
        ("<system><protection_domain name=\"a\"><program_image path=\"a\"/></protection_domain>\
          <protection_domain name=\"b\"><program_image path=\"b\"/></protection_domain>\
          <channel><end pd=\"a\" id=\"62\"/><end pd=\"b\" id=\"1\"/></channel></system>",
         "line 1: `end` attribute `id` has bad value `62`: ids are 0..=61"),
    ];
    for (xml, want) in cases {
        assert_eq!(sdf::parse(xml).unwrap_err().to_string(), want, "{xml}");
    }
}

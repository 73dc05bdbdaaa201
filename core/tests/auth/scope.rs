//! The scope rule as a matrix: every action × two clients × every scope of interest, checked
//! against a table written out by hand (not derived from the rule under test).

use event_processor_core::auth::{Action, Principal};

const ACTIONS: [Action; 3] = [Action::Send, Action::Register, Action::Read];
const CLIENTS: [&str; 2] = ["alpha", "beta"];

/// Each scope and exactly the (action, client) pairs it allows.
fn table() -> Vec<(&'static str, Vec<(Action, &'static str)>)> {
    use Action::*;
    vec![
        ("alpha:send", vec![(Send, "alpha")]),
        ("alpha:register", vec![(Register, "alpha")]),
        ("alpha:read", vec![(Read, "alpha")]),
        ("*:send", vec![(Send, "alpha"), (Send, "beta")]),
        ("*:read", vec![(Read, "alpha"), (Read, "beta")]),
        ("*:register", vec![(Register, "alpha"), (Register, "beta")]),
        ("alphabeta:send", vec![]),
        ("alpha:sendx", vec![]),
        ("", vec![]),
        // Beyond the brief's list: near misses that must grant nothing either.
        ("alpha:*", vec![]),
        ("ALPHA:send", vec![]),
        ("alpha:SEND", vec![]),
        ("alph:send", vec![]),
        ("alpha:", vec![]),
        (":send", vec![]),
        ("*", vec![]),
        ("*:*", vec![]),
        ("alpha", vec![]),
        ("send", vec![]),
        ("alpha:send:x", vec![]),
        ("alpha.beta:send", vec![]),
        ("**:send", vec![]),
        ("openid", vec![]),
    ]
}

/// Runs the matrix with `build` turning one scope into a principal; returns the mismatches.
fn mismatches(build: impl Fn(&str) -> Principal) -> (usize, Vec<String>) {
    let mut cases = 0;
    let mut wrong = Vec::new();
    for (scope, allowed) in table() {
        let principal = build(scope);
        for action in ACTIONS {
            for client in CLIENTS {
                cases += 1;
                let expected = allowed.contains(&(action, client));
                let actual = principal.allows(action, client);
                if actual != expected {
                    let kind = if actual {
                        "false allow"
                    } else {
                        "wrong denial"
                    };
                    wrong.push(format!("{kind}: scope {scope:?}, {action} on {client}"));
                }
            }
        }
    }
    (cases, wrong)
}

#[test]
fn the_scope_claim_allows_exactly_the_table() {
    let (cases, wrong) = mismatches(Principal::from_scope_claim);
    assert_eq!(cases, table().len() * 6);
    assert!(
        wrong.is_empty(),
        "{} of {cases} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn a_scope_list_allows_exactly_the_table() {
    let (cases, wrong) = mismatches(|scope| Principal::from_scopes([scope]));
    assert!(
        wrong.is_empty(),
        "{} of {cases} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn scopes_in_one_claim_add_up() {
    let principal = Principal::from_scope_claim("alpha:send beta:read *:register");
    for client in CLIENTS {
        assert!(principal.allows(Action::Register, client));
    }
    assert!(principal.allows(Action::Send, "alpha"));
    assert!(!principal.allows(Action::Send, "beta"));
    assert!(principal.allows(Action::Read, "beta"));
    assert!(!principal.allows(Action::Read, "alpha"));
}

#[test]
fn a_bad_scope_does_not_spoil_the_good_ones_beside_it() {
    let principal = Principal::from_scope_claim("alpha:sendx openid beta:send");
    assert!(principal.allows(Action::Send, "beta"));
    assert!(!principal.allows(Action::Send, "alpha"));
}

#[test]
fn a_client_name_is_case_sensitive() {
    let principal = Principal::from_scope_claim("SpongeBob:send");
    assert!(principal.allows(Action::Send, "SpongeBob"));
    assert!(!principal.allows(Action::Send, "spongebob"));
}

#[test]
fn names_with_digits_dashes_and_underscores_are_clients() {
    let principal = Principal::from_scope_claim("team_2-eu:read");
    assert!(principal.allows(Action::Read, "team_2-eu"));
}

#[test]
fn the_subject_is_for_logs_only() {
    let principal = Principal::from_scope_claim("").with_subject("alpha");
    assert_eq!(principal.subject(), Some("alpha"));
    assert!(!principal.allows(Action::Read, "alpha"));
}

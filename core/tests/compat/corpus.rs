//! The completeness corpus (`corpus.json`): realistic schema evolutions labelled with the truth of
//! each direction. Every `false` carries a counterexample, checked here with the real validator,
//! so the labels are verified; every `true` is probed with generated documents. The checker must
//! never call a false direction compatible (soundness), and should recognise most true ones
//! (completeness, reported).

use crate::common;

use event_processor_core::compat::{Side, inclusion};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Evolution {
    name: String,
    old: Value,
    new: Value,
    backward: bool,
    forward: bool,
}

/// Each entry with its raw object: a counterexample may be JSON `null`, so its presence is read
/// from the object rather than through an `Option`.
fn corpus() -> Vec<(Evolution, Value)> {
    let raw: Vec<Value> =
        serde_json::from_str(include_str!("corpus.json")).expect("corpus.json parses");
    raw.into_iter()
        .map(|entry| {
            (
                serde_json::from_value(entry.clone()).expect("corpus entry shape"),
                entry,
            )
        })
        .collect()
}

/// Each direction: (label, smaller, larger, truth, counterexample key).
fn directions(e: &Evolution) -> [(&'static str, &Value, &Value, bool, &'static str, Side); 2] {
    [
        (
            "backward",
            &e.old,
            &e.new,
            e.backward,
            "counterexample_backward",
            Side::Larger,
        ),
        (
            "forward",
            &e.new,
            &e.old,
            e.forward,
            "counterexample_forward",
            Side::Smaller,
        ),
    ]
}

#[test]
fn the_corpus_is_large_and_well_formed() {
    let corpus = corpus();
    assert!(corpus.len() >= 70, "only {} evolutions", corpus.len());
    let mut names: Vec<&str> = corpus.iter().map(|(e, _)| e.name.as_str()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "duplicate names");
    for (e, raw) in &corpus {
        assert!(
            common::compile(&e.old).is_some(),
            "{}: old does not compile",
            e.name
        );
        assert!(
            common::compile(&e.new).is_some(),
            "{}: new does not compile",
            e.name
        );
        for (label, _, _, truth, key, _) in directions(e) {
            assert_eq!(
                raw.get(key).is_some(),
                !truth,
                "{}: {label} counterexample presence",
                e.name
            );
        }
    }
}

#[test]
fn every_counterexample_is_valid_under_the_smaller_side_and_invalid_under_the_larger() {
    for (e, raw) in corpus() {
        for (label, smaller, larger, truth, key, _) in directions(&e) {
            if truth {
                continue;
            }
            let doc = &raw[key];
            let small = common::compile(smaller).unwrap();
            let large = common::compile(larger).unwrap();
            assert!(
                small.is_valid(doc),
                "{}: {label} counterexample {doc} is not valid under the smaller side",
                e.name
            );
            assert!(
                !large.is_valid(doc),
                "{}: {label} counterexample {doc} is valid under the larger side",
                e.name
            );
        }
    }
}

#[test]
fn true_labels_survive_generated_documents() {
    for (e, _) in corpus() {
        for (label, smaller, larger, truth, _, _) in directions(&e) {
            if !truth {
                continue;
            }
            let small = common::compile(smaller).unwrap();
            let large = common::compile(larger).unwrap();
            for seed in 0..4 {
                for doc in common::documents(smaller, seed, 40) {
                    if small.is_valid(&doc) {
                        assert!(
                            large.is_valid(&doc),
                            "{}: {label} is labelled true, but {doc} says otherwise",
                            e.name
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn the_checker_never_calls_a_false_direction_compatible() {
    for (e, _) in corpus() {
        for (label, smaller, larger, truth, _, side) in directions(&e) {
            let verdict = inclusion(smaller, larger, side);
            if !truth {
                assert!(
                    !verdict.is_empty(),
                    "{}: {label} is incompatible, the checker says compatible",
                    e.name
                );
            }
        }
    }
}

#[test]
fn the_checker_recognises_most_compatible_directions() {
    let (mut truly, mut recognised) = (0, 0);
    let mut missed = Vec::new();
    for (e, _) in corpus() {
        for (label, smaller, larger, truth, _, side) in directions(&e) {
            if !truth {
                continue;
            }
            truly += 1;
            let verdict = inclusion(smaller, larger, side);
            if verdict.is_empty() {
                recognised += 1;
            } else {
                missed.push(format!("{} ({label}): {}", e.name, verdict[0].message));
            }
        }
    }
    let share = 100.0 * f64::from(recognised) / f64::from(truly);
    eprintln!(
        "completeness: recognises {recognised} of {truly} truly compatible directions = {share:.1}%"
    );
    for miss in &missed {
        eprintln!("  not recognised: {miss}");
    }
    assert!(share >= 90.0, "completeness fell to {share:.1}%");
}

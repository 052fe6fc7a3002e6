//! The binary's own behaviour: help, completions, bad arguments, an unreachable broker.

mod common;

#[test]
fn bad_arguments_exit_with_usage_error() {
    let run = common::run(&["topics", "frobnicate"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("frobnicate"), "{}", run.stderr);
}

#[test]
fn completions_are_printed_for_bash() {
    let run = common::run(&["completions", "bash"]);
    let script = run.ok();
    assert!(script.contains("_runnel()"), "{script}");
    assert!(script.contains("topics"), "{script}");
}

#[test]
fn a_broker_starts_and_is_stopped() {
    let broker = common::Broker::start(&[]);
    assert!(
        broker.bootstrap.starts_with("127.0.0.1:"),
        "{}",
        broker.bootstrap
    );
}

//! `Eal::init` reports arguments EAL does not understand (own process: the
//! EAL cannot be initialised again afterwards).

mod common;

use dpdk_bind::{Eal, EalError};

#[test]
fn stray_and_invalid_arguments_are_errors() {
    assert!(matches!(
        Eal::init(&["-l", "0", "bad\0arg"]),
        Err(EalError::NulInArgument { index: 2 })
    ));
    let mut args = common::eal_args("args");
    args.push("stray".to_owned());
    match Eal::init(&args) {
        Err(EalError::UnexpectedArguments(args)) => assert_eq!(args, vec!["stray".to_owned()]),
        other => panic!("stray argument: {other:?}"),
    }
    // Cleaned up again, the runtime directory too (root's, as in CI).
    let runtime_dir = format!("/var/run/dpdk/rvs-dpdk-bind-args-{}", std::process::id());
    assert!(
        !std::path::Path::new(&runtime_dir).exists(),
        "{runtime_dir} was left"
    );
    assert!(matches!(
        Eal::init(&["-l", "0"]),
        Err(EalError::AlreadyInitialised)
    ));
}

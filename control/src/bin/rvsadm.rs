//! `rvsadm`: administer rvsd with ipvsadm's command line.
//!
//! Everything but reading the process's arguments, environment and
//! standard streams lives in `rvs_control::ipvsadm`, where it is tested.

use std::path::PathBuf;
use std::process::ExitCode;

use rvs_control::ipvsadm::{self, Environment, Names, Terminal};
use rvs_control::protocol::{Client, DEFAULT_SOCKET, SOCKET_ENV};

fn main() -> ExitCode {
    let mut words = std::env::args_os().map(|word| word.to_string_lossy().into_owned());
    let program = words.next().unwrap_or_else(|| "rvsadm".to_owned());
    let args: Vec<String> = words.collect();
    let environment = Environment {
        program,
        names: Names::system(),
        default_socket: std::env::var_os(SOCKET_ENV)
            .filter(|path| !path.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from),
    };
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let status = ipvsadm::run(
        &args,
        &environment,
        &mut Terminal {
            stdin: &mut stdin.lock(),
            stdout: &mut stdout.lock(),
            stderr: &mut stderr.lock(),
        },
        |path| Client::connect(path, "rvsadm"),
    );
    // Exit statuses are ipvsadm's: 0, 1, 2 or 255.
    ExitCode::from(u8::try_from(status).unwrap_or(u8::MAX))
}

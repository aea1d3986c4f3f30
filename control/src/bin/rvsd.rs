//! rvsd, the rvs daemon: `rvsd --config FILE` runs the load balancer,
//! `rvsd --check-config FILE` only validates the file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rvs_control::{config, daemon};

#[derive(Debug, Parser)]
#[command(
    name = "rvsd",
    version,
    about = "rvs: a userspace layer-4 load balancer on DPDK"
)]
struct Args {
    /// Run with this configuration file.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "check_config",
        required_unless_present = "check_config"
    )]
    config: Option<PathBuf>,
    /// Validate this configuration file and exit.
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RVS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let (path, check_only) = match (args.config, args.check_config) {
        (_, Some(path)) => (path, true),
        (Some(path), None) => (path, false),
        (None, None) => unreachable!("clap requires one of them"),
    };
    let result = config::load(&path)
        .map_err(|error| error.to_string())
        .and_then(|config| {
            if check_only {
                daemon::check(&config).map_err(|error| format!("{}: {error}", path.display()))
            } else {
                daemon::run(config, &path).map_err(|error| error.to_string())
            }
        });
    match result {
        Ok(()) if check_only => {
            println!("{}: configuration is valid", path.display());
            ExitCode::SUCCESS
        }
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("rvsd: {message}");
            ExitCode::FAILURE
        }
    }
}

//! `sfu-loadtest`: synthetic WebRTC peers that load `sfu-server` the way
//! real calls do. The command line is in place; the peers and scenarios are
//! not built yet, and the tool says so instead of pretending to measure.

use clap::{Parser, ValueEnum};

/// What kind of load to generate.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scenario {
    /// N concurrent 1:1 calls.
    Calls,
    /// R rooms of M participants.
    Room,
    /// One publisher to N subscribers.
    Fanout,
    /// Peers joining and leaving at a rate.
    Churn,
}

/// Load-test an SFU with synthetic WebRTC peers.
#[derive(Debug, Parser)]
#[command(name = "sfu-loadtest", version, about)]
struct Cli {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The load pattern.
    #[arg(long, value_enum, default_value = "room")]
    scenario: Scenario,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    eprintln!(
        "sfu-loadtest: scenario {:?} against {} is not implemented yet; no load was generated",
        cli.scenario, cli.url
    );
    std::process::ExitCode::from(2)
}

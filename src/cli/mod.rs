//! The command line: a thin layer over the library. One file per command.

pub mod bench;
pub mod certs;
pub mod check;
pub mod compile;
pub mod diff;
pub mod explain;
pub mod export;
pub mod fmt;
pub mod generate;
pub mod graph;
pub mod import;
pub mod load;
pub mod output;
pub mod passwd;
pub mod query;
pub mod serve;
pub mod serve_config;
pub mod serve_ops;
pub mod serve_reload;
pub mod test;

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

/// Verify MQTT access policies and serve them from an enforcing broker.
#[derive(Debug, Parser)]
#[command(name = "topicgate", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with policy files: check, test, explain, query, diff, graph, format, compile, export.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Load-test an MQTT broker (ours or any other): throughput, latency, wills, connections.
    Bench(bench::BenchArgs),
    /// Serve a policy (YAML, the DSL or a compiled artifact) from an enforcing MQTT 3.1.1/5 broker.
    Serve(serve::ServeArgs),
    /// Hash a client's password (argon2) into the `passwordHash` line of the policy.
    Passwd(passwd::PasswdArgs),
    /// Create development certificates and read thumbprints.
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// Print a shell completion script, e.g. `topicgate completions bash > /etc/bash_completion.d/topicgate`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Verify policies: every mistake with its code, the exact place and a fix (schema,
    /// references, queries, templates, and wills the broker would refuse, nobody hears
    /// or anybody can forge); human, JSON, SARIF or GitHub output.
    Check(check::CheckArgs),
    /// Format a policy canonically, or convert it between YAML and the DSL.
    Fmt(fmt::FmtArgs),
    /// Compile a policy into the binary artifact the broker boots from.
    Compile(compile::CompileArgs),
    /// Decide whether a client may connect, publish or subscribe, and say why.
    Explain(explain::ExplainArgs),
    /// Write the policy in another broker's access-control format (Mosquitto).
    Export(export::ExportArgs),
    /// Read a policy from another system's configuration (Azure Event Grid).
    Import(import::ImportArgs),
    /// Ask who may publish, subscribe or receive; what a client may do; whether data can flow.
    Query(query::QueryArgs),
    /// Compare the access two policies grant: per client, what is gained and lost, with
    /// witness topics; `--fail-on new-access` fails a pull request that widens access.
    Diff(diff::DiffArgs),
    /// Run the policy's `tests:` (allow/deny expectations for publish, subscribe,
    /// receive and connect with a will) and those of test files; report each case and
    /// which bindings and templates no test covers.
    Test(test::TestArgs),
    /// Draw the policy as a Mermaid or DOT graph, or print its access matrix.
    Graph(graph::GraphArgs),
    /// Write a synthetic policy of any size, for benchmarks and load tests.
    Generate(generate::GenerateArgs),
}

/// Exit codes shared by all commands.
pub mod exit {
    pub const OK: u8 = 0;
    /// A finding: a policy with errors, a denied decision.
    pub const FINDING: u8 = 1;
    /// The command could not do its job: unreadable file, bad arguments.
    pub const ERROR: u8 = 2;
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::ERROR
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    ExitCode::from(run(cli))
}

pub fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Policy(PolicyCommand::Check(args)) => check::run(args),
        Command::Policy(PolicyCommand::Compile(args)) => compile::run(args),
        Command::Policy(PolicyCommand::Fmt(args)) => fmt::run(args),
        Command::Policy(PolicyCommand::Explain(args)) => explain::run(args),
        Command::Policy(PolicyCommand::Export(args)) => export::run(args),
        Command::Policy(PolicyCommand::Import(args)) => import::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Policy(PolicyCommand::Query(args)) => query::run(args),
        Command::Policy(PolicyCommand::Diff(args)) => diff::run(args),
        Command::Policy(PolicyCommand::Test(args)) => test::run_command(args),
        Command::Policy(PolicyCommand::Graph(args)) => graph::run(args),
        Command::Policy(PolicyCommand::Generate(args)) => generate::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Certs(cmd) => certs::run(cmd),
        Command::Passwd(args) => passwd::run(args),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "topicgate",
                &mut std::io::stdout(),
            );
            exit::OK
        }
    }
}

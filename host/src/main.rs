//! `docket`: seal every policy decision into a verifiable log. See `docket --help`.
//!
//! This file parses the command line and dispatches; each subcommand lives in `commands/`.

mod commands;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "docket", version, about = "Every policy decision, sealed into a log anyone can verify.", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an Ed25519 key pair: <stem>.key (0600, secret) and <stem>.pub.
    ///
    /// Example: docket keygen --out keys --name audit.example
    Keygen(commands::keys::KeygenArgs),
    /// Evaluate a query as `opa eval` does; with --dir and --key, also seal the decision into
    /// a log, durably, and print its entry.
    ///
    /// A query naming no package, rule or data document of the policies (a typo) is an error,
    /// never an undefined decision.
    ///
    /// Example (evaluate only):
    ///   docket eval -d examples/policies -i input.json 'data.rbac.allow'
    ///
    /// Example (seal into ./log):
    ///   docket eval -d examples/policies -i input.json 'data.rbac.allow' --dir log --key docket.key
    Eval(commands::eval::EvalArgs),
    /// Run the policies' Rego tests as `opa test` does: every rule named test_* passes when it
    /// is true. Nothing is sealed.
    ///
    /// Exit 0 when every test passes; 1 when one fails or raises an error; 2 when the policies
    /// cannot be read or loaded.
    ///
    /// Example: docket test policies/ -v
    Test(commands::test::TestArgs),
    /// Load the policies and data as `docket serve` would and report every module that does not
    /// (syntax, safety, an unsupported builtin), as `opa check` does. Nothing is evaluated.
    ///
    /// Exit 0 when everything loads; 1 naming each error.
    ///
    /// Example: docket check policies/
    Check(commands::check::CheckArgs),
    /// Verify a log directory or an export file against the log's genesis public key.
    ///
    /// Exit 0 with a summary; 1 naming the first bad entry and why, damage in the files (file,
    /// offset, last good entry), or a log directory that ends in an unfinished commit.
    /// Example: docket verify log --pub docket.pub
    Verify(commands::verify::VerifyArgs),
    /// Hand a log over to a new signing key: a rotation entry signed by the current key, after
    /// which the new key signs. Afterwards pass the genesis key with --pub to eval and verify.
    ///
    /// Example: docket rotate-key --dir log --key old.key --new-key new.key --pub genesis.pub
    RotateKey(commands::keys::RotateKeyArgs),
    /// Inspect a log directory: entries, export, the latest checkpoint.
    #[command(subcommand)]
    Log(commands::log::LogCommand),
    /// Serve OPA's REST API with every decision sealed and durable before it is answered, accept
    /// OPA decision-log uploads at /logs, and serve the log with proofs (docs/api.md).
    ///
    /// With no flags it serves the example policies on 127.0.0.1:8181 and keeps its key, write
    /// token and log under ./docket-data.
    ///
    /// Example: docket serve --policy policies/ --addr 127.0.0.1:8181
    ///          curl -s localhost:8181/v1/data/rbac/allow -H 'Content-Type: application/json' -d '{"input":{"user":"alice","action":"read","resource":{"type":"document","id":"d1"}}}'
    Serve(Box<commands::serve::ServeArgs>),
    /// Write the browser log verifier (the page `docket serve` shows at /ui) as plain files,
    /// for any static web server.
    ///
    /// Example: docket ui --out site && python3 -m http.server -d site
    Ui(commands::serve::UiArgs),
    /// Witness other logs (C2SP tlog-witness): cosign each checkpoint a log submits only if it
    /// is consistent with every one cosigned before, and keep any contradicting checkpoint as
    /// evidence. Logs submit to it with `docket serve --witness`.
    ///
    /// Example: docket witness --dir w1 --name witness.example/w1 --log log.pub --addr 127.0.0.1:7380
    Witness(commands::witness::WitnessArgs),
    /// The main job on embedded defaults: seal and verify thousands of decisions, then show
    /// that tampering is caught.
    ///
    /// Example: docket demo --count 5000
    Demo(commands::demo::DemoArgs),
}

fn main() {
    let cli = Cli::parse();
    // A closed stdout (`docket verify log --pub k.pub | head -1`) ends a command quietly, as it
    // ends `cat`: the default SIGPIPE action instead of Rust's panic on EPIPE. `docket serve`
    // keeps SIGPIPE ignored: a client hanging up must never stop the server.
    if !matches!(cli.command, Command::Serve(_) | Command::Witness(_)) {
        // SAFETY: called before any thread is started; SIG_DFL is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("docket: error: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> Result<i32> {
    use commands::*;
    match cli.command {
        Command::Keygen(args) => keys::keygen(args),
        Command::Eval(args) => eval::run(args),
        Command::Test(args) => test::run(args),
        Command::Check(args) => check::run(args),
        Command::Verify(args) => verify::run(args),
        Command::RotateKey(args) => keys::rotate_key(args),
        Command::Log(cmd) => log::run(cmd),
        Command::Demo(args) => demo::run(args),
        Command::Ui(args) => serve::ui(args),
        Command::Serve(args) => serve::run(args),
        Command::Witness(args) => witness::run(args),
    }
}

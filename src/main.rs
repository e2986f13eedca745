//! The `doorstep` command: serve, migrate, bootstrap an admin, generate VAPID keys.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use doorstep::config::Settings;
use doorstep::startup::Application;

#[derive(Parser)]
#[command(
    name = "doorstep",
    version,
    about = "Check-ins and escalation that keep canvassers safe"
)]
struct Cli {
    /// Configuration file (default: config/default.toml when present, else built-in defaults).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API, scheduler and push delivery (applies pending migrations first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Copy the SQLite database, consistently, while the server runs (restore: `serve` on the
    /// copy). PostgreSQL: use pg_dump (docs/operations.md).
    Backup {
        /// The new file (refused if it exists); written owner-only.
        #[arg(long)]
        to: PathBuf,
    },
    /// Manage platform administrators.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Measure ingest, detection lag, push fan-out and memory against a server started as a
    /// child process (see docs/benchmarks.md). Built with `--features bench`.
    #[cfg(feature = "bench")]
    Bench(doorstep::bench::BenchOptions),
    /// VAPID keys for Web Push.
    Vapid {
        #[command(subcommand)]
        command: VapidCommand,
    },
    /// Print the OpenAPI 3.1 document (the one served at /api/v1/openapi.json).
    Openapi,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a platform admin.
    Create {
        #[arg(long)]
        email: String,
        /// The password (prefer --password-stdin: arguments are visible to other users).
        #[arg(
            long,
            conflicts_with = "password_stdin",
            required_unless_present = "password_stdin"
        )]
        password: Option<String>,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        #[arg(long, default_value = "Administrator")]
        name: String,
    },
}

#[derive(Subcommand)]
enum VapidCommand {
    /// Print a new VAPID key pair.
    Generate,
}

fn main() -> ExitCode {
    // Before anything opens a database or starts a thread (see the function).
    let sqlite_tuned = doorstep::store::tune_sqlite_process();
    let allocator_tuned = doorstep::allocator::return_large_blocks_to_the_system();
    let cli = Cli::parse();
    doorstep::telemetry::init_logging();
    if !allocator_tuned {
        tracing::warn!(
            "the allocator refused its settings; freed large blocks may stay in the process"
        );
    }
    if !sqlite_tuned {
        tracing::warn!("SQLite refused its process settings; it will run in serialized mode");
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("doorstep: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    if let Command::Vapid {
        command: VapidCommand::Generate,
    } = cli.command
    {
        let pair = doorstep::vapid::generate();
        println!("private_key = \"{}\"", pair.private_key);
        println!("public_key  = \"{}\"", pair.public_key);
        return Ok(());
    }
    if let Command::Openapi = cli.command {
        use utoipa::OpenApi;
        let doc = doorstep::http::openapi::ApiDoc::openapi()
            .to_pretty_json()
            .map_err(|e| format!("rendering the OpenAPI document: {e}"))?;
        println!("{doc}");
        return Ok(());
    }
    #[cfg(feature = "bench")]
    if let Command::Bench(options) = cli.command {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("starting the runtime: {e}"))?;
        let report = runtime.block_on(doorstep::bench::run(options))?;
        println!("{}", report.text);
        return Ok(());
    }
    let settings = Settings::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
    match cli.command {
        Command::Serve => serve(settings),
        Command::Migrate => {
            let store =
                doorstep::store::Store::connect(&settings.database).map_err(|e| e.to_string())?;
            let applied = store.migrate().map_err(|e| e.to_string())?;
            println!("{applied} migration(s) applied");
            Ok(())
        }
        Command::Backup { to } => {
            doorstep::admin::backup(&settings, &to).map_err(|e| e.to_string())?;
            println!("backup written to {}", to.display());
            Ok(())
        }
        Command::Admin {
            command:
                AdminCommand::Create {
                    email,
                    password,
                    password_stdin,
                    name,
                },
        } => {
            let password = match (password, password_stdin) {
                (Some(p), _) => p,
                // At a terminal: a prompt, without echo, ended by Enter.
                (None, _) if std::io::stdin().is_terminal() => {
                    rpassword::prompt_password("Password for the new admin: ")
                        .map_err(|e| format!("reading the password: {e}"))?
                }
                // A pipe or a file: all of it, less the final newline.
                (None, _) => {
                    let mut input = String::new();
                    std::io::stdin()
                        .read_to_string(&mut input)
                        .map_err(|e| format!("reading the password from stdin: {e}"))?;
                    input.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let id = doorstep::admin::create_admin(&settings, &email, &password, &name)
                .map_err(|e| e.to_string())?;
            println!("admin {id} created");
            Ok(())
        }
        Command::Vapid { .. } | Command::Openapi => Ok(()),
        #[cfg(feature = "bench")]
        Command::Bench(_) => Ok(()),
    }
}

fn serve(settings: Settings) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    runtime.block_on(async move {
        let host = settings
            .server
            .bind
            .rsplit_once(':')
            .map(|(h, _)| h.to_owned())
            .unwrap_or_default();
        let app = Application::build(settings).map_err(|e| e.to_string())?;
        // A stable line on stdout that scripts and tests can wait for (the port may have been 0).
        println!("doorstep listening on http://{host}:{}", app.port());
        app.run_until_stopped().await.map_err(|e| e.to_string())
    })
}

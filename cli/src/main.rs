//! `layer`: operate Layer from a terminal. Named environments in `~/.hevlayer/config.toml`;
//! index, pipeline and UDF state and API keys through the gateway API. Exit codes: 0 ok,
//! 1 failure, 2 usage.

mod client;
mod config;
mod context;
mod dev;
mod docgen;
mod env_cmd;
mod error;
mod keys;
mod manifest;
mod output;
mod reads;
mod run;
mod tui;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::context::Ctx;
use crate::output::Format;

macro_rules! out_of_scope {
    () => {
        "`layer ask` is out of scope: it needs a docs digest Layer does not ship."
    };
}

const ROOT_AFTER: &str = concat!(
    "Settings resolve in this order: flags (--base-url, --api-key, --context, --kube-namespace); \
LAYER_BASE_URL / LAYER_API_KEY (or HEVLAYER_BASE_URL / HEVLAYER_API_KEY); the environment named \
by --env or LAYER_ENV; the active environment in ~/.hevlayer/config.toml; the built-in base URL.

Examples:
  layer env add local --base-url http://localhost:8080 --api-key \"$KEY\"
  layer env use local
  layer index list -o names
  layer keys mint reader --entitle layer=read | pbcopy
  layer             (on a terminal: the read-only TUI, also `layer browse`)
  layer run -f tag-products.yaml
  layer completions bash > ~/.local/share/bash-completion/completions/layer

",
    out_of_scope!()
);

#[derive(Parser, Debug)]
#[command(
    name = "layer",
    version,
    about = "Operate Layer from the terminal: environments, indexes, pipelines, UDFs, API keys",
    after_help = ROOT_AFTER
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Args, Debug)]
struct Global {
    /// Gateway base URL [env: LAYER_BASE_URL, HEVLAYER_BASE_URL] [default: https://aws-us-east-1.hevlayer.com]
    #[arg(long, global = true, value_name = "URL")]
    base_url: Option<String>,
    /// API key sent as the bearer [env: LAYER_API_KEY, HEVLAYER_API_KEY]
    #[arg(long, global = true, value_name = "KEY")]
    api_key: Option<String>,
    /// Use this config environment for one invocation [env: LAYER_ENV]
    #[arg(long = "env", global = true, value_name = "NAME")]
    env: Option<String>,
    /// Kubeconfig context for `run` (stored per environment by `env add --kube-context`)
    #[arg(long, global = true, value_name = "CONTEXT")]
    context: Option<String>,
    /// Kubernetes namespace of the Function CR `run` applies (stored by `env add`)
    #[arg(long, global = true, value_name = "NAMESPACE")]
    kube_namespace: Option<String>,
    /// Output format of reads
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Named environments in ~/.hevlayer/config.toml
    #[command(
        after_help = "Examples:\n  layer env add partner --base-url https://aws-us-east-1.hevlayer.com \\\n    --api-key \"$LAYER_API_KEY\" --kube-context partner-cluster --kube-namespace hevlayer\n  layer env use partner\n  layer env ls\n  layer env show partner -o json\n  layer env rm partner"
    )]
    Env {
        #[command(subcommand)]
        cmd: env_cmd::EnvCmd,
    },
    /// Indexes (namespaces): list, inspect, delete
    #[command(
        after_help = "Examples:\n  layer index list\n  layer index get shop-products\n  layer index get shop-products -o json\n  layer index delete old-index --yes"
    )]
    Index {
        #[command(subcommand)]
        cmd: reads::IndexCmd,
    },
    /// Pipelines and their queue depth
    #[command(after_help = "Examples:\n  layer pipeline list\n  layer pipeline get product-images")]
    Pipeline {
        #[command(subcommand)]
        cmd: reads::PipelineCmd,
    },
    /// UDFs (Functions) and their queues
    #[command(
        after_help = "Examples:\n  layer udf list\n  layer udf get product-tags --watch\n\n`layer run -f function.yaml` applies, registers, discovers and waits."
    )]
    Udf {
        #[command(subcommand)]
        cmd: reads::UdfCmd,
    },
    /// API keys: mint, list, inspect, revoke, delete (needs a `layer` admin key)
    #[command(
        after_help = "Examples:\n  layer keys mint cohort-reader --owner acme --entitle vectorstore.prod-turbopuffer=read \\\n    --namespaces 'cohort-*' --claim warehouse.prod-snowflake='notes:cohort:*:read'\n  layer keys ls\n  layer keys get cohort-reader\n  layer keys revoke cohort-reader\n  layer keys rm cohort-reader\n  layer keys mint -f key.yaml"
    )]
    Keys {
        #[command(subcommand)]
        cmd: keys::KeysCmd,
    },
    /// The read-only TUI (what bare `layer` opens on a terminal)
    #[command(
        after_help = "Keys: i/f/p/k/e switch to indexes, functions, pipelines, keys, environments; \
enter opens a detail view; esc/q backs out (quits from a list); r re-reads now; ctrl-c quits.\n\nExample:\n  layer browse --env partner --interval 10"
    )]
    Browse(tui::BrowseArgs),
    /// Run a Function manifest: apply the CR, register the UDF, discover, wait for the drain
    #[command(after_help = run::RUN_AFTER)]
    Run(run::RunArgs),
    /// Run the embedded stack (emulator, gateway, PostgreSQL, VictoriaMetrics, dashboard) in
    /// the foreground until Ctrl-C
    #[command(after_help = dev::DEV_AFTER)]
    Dev(dev::DevArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    #[command(
        after_help = "Examples:\n  layer completions bash > ~/.local/share/bash-completion/completions/layer\n  layer completions zsh > \"${fpath[1]}/_layer\"\n  layer completions fish > ~/.config/fish/completions/layer.fish"
    )]
    Completions(docgen::CompletionsArgs),
    /// Print the layer(1) man page, or write every command's page with --dir
    #[command(
        after_help = "Examples:\n  layer man | man -l -\n  layer man --dir /usr/local/share/man/man1"
    )]
    Man(docgen::ManArgs),
    /// Not built (hidden): answers usage with the reason instead of "unrecognized subcommand"
    #[command(hide = true)]
    Ask {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        question: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    let cmd = match cli.cmd {
        Some(cmd) => cmd,
        // Bare `layer`: the TUI on a terminal, else usage and exit 2.
        None if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() => {
            Cmd::Browse(tui::BrowseArgs::default())
        }
        None => {
            let mut c = <Cli as clap::CommandFactory>::command();
            let _ = c.print_help();
            return ExitCode::from(2);
        }
    };
    let ctx = Ctx {
        format: cli.global.output,
        flags: config::Flags {
            base_url: cli.global.base_url,
            api_key: cli.global.api_key,
            env: cli.global.env,
            context: cli.global.context,
            kube_namespace: cli.global.kube_namespace,
        },
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async {
        match cmd {
            Cmd::Env { cmd } => env_cmd::run(&ctx, cmd),
            Cmd::Index { cmd } => reads::index(&ctx, cmd).await,
            Cmd::Pipeline { cmd } => reads::pipeline(&ctx, cmd).await,
            Cmd::Udf { cmd } => reads::udf(&ctx, cmd).await,
            Cmd::Keys { cmd } => keys::run(&ctx, cmd).await,
            Cmd::Browse(args) => tui::run(&ctx, args).await,
            Cmd::Run(args) => run::run(&ctx, args).await,
            Cmd::Dev(args) => dev::run(args, ctx.flags.api_key.clone()).await,
            Cmd::Completions(args) => {
                docgen::completions(<Cli as clap::CommandFactory>::command(), &args)
            }
            Cmd::Man(args) => docgen::man(<Cli as clap::CommandFactory>::command(), &args),
            Cmd::Ask { .. } => Err(error::CliError::usage(out_of_scope!())),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

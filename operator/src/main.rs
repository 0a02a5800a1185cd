//! `layer-operator`: parses its flags (each also an environment variable the Helm chart sets)
//! and runs [`layer_operator::run::run`].

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .init();
    let config = layer_operator::config::Config::parse();
    layer_operator::run::run(config).await
}

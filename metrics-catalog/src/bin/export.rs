//! `cargo run -p metrics-catalog --bin export [family]`: prints the catalog as the gateway serves
//! it at `GET /v2/metrics/catalog` (pretty JSON on stdout), optionally only one family.

fn main() {
    let family = std::env::args().nth(1);
    match metrics_catalog::catalog_json(family.as_deref()) {
        Ok(v) => match serde_json::to_string_pretty(&v) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("export: {e}");
                std::process::exit(1);
            }
        },
        Err(e) => {
            eprintln!("export: {e}");
            std::process::exit(2);
        }
    }
}

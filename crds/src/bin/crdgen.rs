//! `crdgen`: writes the `hevlayer.com` CRD manifests, generated from `crds::k8s`, into the Helm
//! chart (`deploy/helm/layer/crds/<plural>.hevlayer.com.yaml`, one file per kind).
//!
//! Usage: `cargo run -p layer-crds --features kube --bin crdgen [-- DIR | --stdout]`
//! (DIR defaults to the chart's `crds/` directory of this checkout). The test
//! `committed_crds_match_the_generated_ones` (`--features crd-tests`) fails when the committed
//! files differ.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    if matches!(arg.as_deref(), Some("-h" | "--help")) {
        println!("usage: crdgen [DIR | --stdout]   (DIR: default deploy/helm/layer/crds)");
        return ExitCode::SUCCESS;
    }
    let stdout = arg.as_deref() == Some("--stdout");
    let dir = match arg {
        Some(d) if !stdout => PathBuf::from(d),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/helm/layer/crds"),
    };
    if !stdout && let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("crdgen: creating {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    for crd in crds::k8s::all() {
        let yaml = match crds::k8s::to_yaml(&crd) {
            Ok(y) => y,
            Err(e) => {
                eprintln!("crdgen: serializing {:?}: {e}", crd.metadata.name);
                return ExitCode::FAILURE;
            }
        };
        if stdout {
            print!("---\n{yaml}");
            continue;
        }
        let path = dir.join(crds::k8s::file_name(&crd));
        if let Err(e) = std::fs::write(&path, yaml) {
            eprintln!("crdgen: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}

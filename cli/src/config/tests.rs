//! The resolution order, level by level, and the config file's parse errors.

use std::collections::HashMap;

use super::*;

fn cfg() -> ConfigFile {
    parse(
        r#"
active = "partner"
[envs.partner]
base_url = "https://partner.example"
api_key = "partner-key-123456"
kube_context = "partner-cluster"
kube_namespace = "hevlayer"
[envs.local]
base_url = "http://localhost:8080"
api_key = "dev"
"#,
    )
    .unwrap()
}

fn run(flags: Flags, vars: &[(&str, &str)], cfg: ConfigFile) -> Result<Resolved> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    resolve(&flags, &|k| vars.get(k).cloned(), move || Ok(cfg))
}

#[test]
fn level5_default_when_nothing_is_set() {
    let r = run(Flags::default(), &[], ConfigFile::default()).unwrap();
    assert_eq!(r.base_url, DEFAULT_BASE_URL);
    assert_eq!(r.base_url_source, Source::Default);
    assert_eq!(r.api_key, None);
    assert_eq!(r.env_name, None);
}

#[test]
fn level4_active_env() {
    let r = run(Flags::default(), &[], cfg()).unwrap();
    assert_eq!(r.base_url, "https://partner.example");
    assert_eq!(r.base_url_source, Source::ActiveEnv);
    assert_eq!(r.api_key.as_deref(), Some("partner-key-123456"));
    assert_eq!(r.kube_context.as_deref(), Some("partner-cluster"));
    assert_eq!(r.env_name.as_deref(), Some("partner"));
}

#[test]
fn level3_env_flag_and_layer_env_beat_the_active_env() {
    let flags = Flags {
        env: Some("local".into()),
        ..Flags::default()
    };
    let r = run(flags, &[("LAYER_ENV", "partner")], cfg()).unwrap();
    assert_eq!(r.base_url, "http://localhost:8080");
    assert_eq!(r.base_url_source, Source::SelectedEnv);
    assert_eq!(r.api_key.as_deref(), Some("dev"));
    // The selected env has no kube context: the active env's is not borrowed.
    assert_eq!(r.kube_context, None);
    let r = run(Flags::default(), &[("LAYER_ENV", "local")], cfg()).unwrap();
    assert_eq!(r.env_name.as_deref(), Some("local"));
}

#[test]
fn level2_variables_beat_environments_and_layer_beats_hevlayer() {
    let flags = Flags {
        env: Some("local".into()),
        ..Flags::default()
    };
    let vars = [
        ("HEVLAYER_BASE_URL", "http://hev.example"),
        ("HEVLAYER_API_KEY", "hev-key"),
    ];
    let r = run(flags.clone(), &vars, cfg()).unwrap();
    assert_eq!(r.base_url, "http://hev.example");
    assert_eq!(r.base_url_source, Source::EnvVar);
    assert_eq!(r.api_key.as_deref(), Some("hev-key"));
    let vars = [
        ("HEVLAYER_BASE_URL", "http://hev.example"),
        ("LAYER_BASE_URL", "http://layer.example"),
        ("LAYER_API_KEY", ""),
        ("HEVLAYER_API_KEY", "hev-key"),
    ];
    let r = run(flags, &vars, cfg()).unwrap();
    assert_eq!(r.base_url, "http://layer.example");
    // An empty LAYER_API_KEY counts as unset, so its twin applies.
    assert_eq!(r.api_key.as_deref(), Some("hev-key"));
}

#[test]
fn level1_flags_beat_everything() {
    let flags = Flags {
        base_url: Some("http://flag.example".into()),
        api_key: Some("flag-key".into()),
        env: Some("local".into()),
        context: Some("ctx".into()),
        kube_namespace: Some("ns".into()),
    };
    let vars = [
        ("LAYER_BASE_URL", "http://layer.example"),
        ("LAYER_API_KEY", "var-key"),
    ];
    let r = run(flags, &vars, cfg()).unwrap();
    assert_eq!(r.base_url, "http://flag.example");
    assert_eq!(r.base_url_source, Source::Flag);
    assert_eq!(r.api_key.as_deref(), Some("flag-key"));
    assert_eq!(r.kube_context.as_deref(), Some("ctx"));
    assert_eq!(r.kube_namespace.as_deref(), Some("ns"));
}

#[test]
fn unknown_selected_env_is_an_error_naming_the_known_ones() {
    let flags = Flags {
        env: Some("nope".into()),
        ..Flags::default()
    };
    let e = run(flags, &[], cfg()).unwrap_err();
    assert_eq!(e.code, 1);
    assert!(e.message.contains("\"nope\""), "{e}");
    assert!(e.message.contains("local, partner"), "{e}");
}

#[test]
fn variables_alone_need_no_config_file() {
    let vars: HashMap<&str, &str> = [
        ("LAYER_BASE_URL", "http://layer.example"),
        ("LAYER_API_KEY", "k"),
    ]
    .into();
    let r = resolve(
        &Flags::default(),
        &|k| vars.get(k).map(|v| v.to_string()),
        || Err(CliError::failure("malformed")),
    )
    .unwrap();
    assert_eq!(r.base_url, "http://layer.example");
    // ...but a malformed config is reported when an environment is asked for.
    let flags = Flags {
        env: Some("local".into()),
        ..Flags::default()
    };
    let e = resolve(&flags, &|k| vars.get(k).map(|v| v.to_string()), || {
        Err(CliError::failure("malformed"))
    })
    .unwrap_err();
    assert_eq!(e.message, "malformed");
}

#[test]
fn malformed_config_names_the_line() {
    let e = parse("active = \"a\"\n[envs.a]\nbase_url = 3\n").unwrap_err();
    assert!(e.starts_with("line 3:"), "{e}");
    let e = parse("active = \"a\"\nbogus = 1\n").unwrap_err();
    assert!(e.starts_with("line 2:"), "{e}");
}

#[test]
fn masking_never_shows_more_than_four_characters() {
    assert_eq!(mask("hvl_abcdefghijklmnop"), "****mnop");
    assert_eq!(mask("dev"), "****");
}

//! `layer completions` and `layer man`, checked against the commands `layer --help` lists (so a
//! command added later is covered without editing this test): bash really completes every
//! command and subcommand, every shell gets a script, and the man pages render and name every
//! subcommand.

use std::path::Path;
use std::process::Command;

use super::{home, layer};

/// The subcommands a `--help` output lists (its `Commands:` section, `help` left out).
fn commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

/// `(top, [subcommands])` for every command of `layer`.
fn tree(h: &Path) -> Vec<(String, Vec<String>)> {
    let top = commands(&layer(h, &["--help"], &[]).ok().stdout);
    assert!(top.len() >= 9, "{top:?}");
    top.into_iter()
        .map(|c| {
            let subs = commands(&layer(h, &[c.as_str(), "--help"], &[]).ok().stdout);
            (c, subs)
        })
        .collect()
}

/// What bash's completion function offers for `words` (the last one being completed).
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let cword = words.len() - 1;
    let line = words.join(" ");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let prog = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={cword}; COMP_LINE='{line}'; COMP_POINT={}; \
         _layer layer '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        line.len(),
        words[cword],
        words[cword - 1],
    );
    let o = Command::new("bash")
        .args(["--norc", "-c", &prog])
        .output()
        .expect("bash");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn completions_and_man_pages_cover_every_command() {
    let h = home("cli-docgen");
    let tree = tree(&h);
    let names: Vec<&str> = tree.iter().map(|(c, _)| c.as_str()).collect();
    for want in ["run", "dev", "completions", "man", "keys"] {
        assert!(names.contains(&want), "{names:?}");
    }

    // Every shell gets a script naming the commands.
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let s = layer(&h, &["completions", shell], &[]).ok().stdout;
        for c in &names {
            assert!(s.contains(c), "{shell} completion lacks {c}");
        }
    }
    let r = layer(&h, &["completions", "tcsh"], &[]);
    assert_eq!(r.code, 2, "an unknown shell is a usage error: {}", r.stderr);

    // bash, for real: the completion function offers each command and each subcommand.
    let script = h.join("layer.bash");
    std::fs::write(
        &script,
        layer(&h, &["completions", "bash"], &[]).ok().stdout,
    )
    .unwrap();
    let all = bash_complete(&script, &["layer", ""]);
    for (c, subs) in &tree {
        assert!(all.contains(c), "`layer <TAB>` lacks {c}: {all:?}");
        let prefix = &c[..2];
        let got = bash_complete(&script, &["layer", prefix]);
        assert!(got.contains(c), "`layer {prefix}<TAB>` lacks {c}: {got:?}");
        if !subs.is_empty() {
            let got = bash_complete(&script, &["layer", c, ""]);
            for s in subs {
                assert!(got.contains(s), "`layer {c} <TAB>` lacks {s}: {got:?}");
            }
        }
    }
    let flags = bash_complete(&script, &["layer", "run", "--"]);
    for f in ["--filename", "--detach", "--rm", "--no-apply", "--index"] {
        assert!(flags.iter().any(|x| x == f), "{f}: {flags:?}");
    }

    // layer(1) is roff that renders (through groff when installed) and names every command.
    let page = layer(&h, &["man"], &[]).ok().stdout;
    assert!(page.contains(".TH layer 1"), "{page}");
    let rendered = match Command::new("groff")
        .args(["-man", "-Tascii", "-P", "-cbou"])
        .stdin(
            std::fs::File::open({
                let p = h.join("layer.1");
                std::fs::write(&p, &page).unwrap();
                p
            })
            .unwrap(),
        )
        .output()
    {
        Ok(o) => {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).into_owned()
        }
        Err(_) => {
            eprintln!("groff is not installed: checking the roff source only");
            page.clone()
        }
    };
    assert!(rendered.contains("SUBCOMMANDS"), "{rendered}");
    for c in &names {
        assert!(
            rendered.contains(&format!("layer-{c}(1)")),
            "{c}: {rendered}"
        );
    }

    // --dir: one page per command and subcommand.
    let dir = h.join("man1");
    let listed = layer(&h, &["man", "--dir", dir.to_str().unwrap()], &[])
        .ok()
        .stdout;
    for (c, subs) in &tree {
        let page = format!("layer-{c}.1");
        assert!(dir.join(&page).is_file(), "{page}: {listed}");
        for s in subs {
            let page = format!("layer-{c}-{s}.1");
            assert!(dir.join(&page).is_file(), "{page}: {listed}");
        }
    }
    let run_page = std::fs::read_to_string(dir.join("layer-run.1")).unwrap();
    assert!(run_page.contains("no\\-apply"), "{run_page}");
}

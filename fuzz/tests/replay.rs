//! The short run of every fuzz target, on stable: every committed seed in `corpus/<target>/`,
//! then a fixed number of deterministic mutations of them (byte flips, insertions of dictionary
//! tokens, deletions, duplications, splices of two seeds). A failure names the target and prints
//! the input as a Rust byte string, to save as a seed.

use std::fs;
use std::path::PathBuf;

/// Mutated inputs per target.
const MUTATIONS: usize = 3_000;

const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"",
    b"\\",
    b"null",
    b"0",
    b"-1",
    b"1e400",
    b"18446744073709551615",
    b"\"rank_by\"",
    b"\"HybridText\"",
    b"\"Auto\"",
    b"\"queries\"",
    b"\"filters\"",
    b"\"vector\"",
    b"\"nearest_to_id\"",
    b"\"rows\"",
    b"\"$dist\"",
    b"\"id\"",
    b"%2F",
    b"%",
    b"+",
    b"/",
    b"&",
    b"=",
    b"..",
    b"\xff",
    b"\xc3\xa9",
    b"\r\n",
    b"HTTP/1.1 ",
    b"content-length: ",
    b"transfer-encoding: chunked",
    b"connection: close",
];

/// xorshift64*: a fixed sequence, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut v = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                v.splice(at..at, t.iter().copied());
            }
            2 => {
                let end = (at + 1 + rng.below(8)).min(v.len());
                v.drain(at.min(end)..end);
            }
            3 => {
                let end = (at + 1 + rng.below(16)).min(v.len());
                let chunk = v[at.min(end)..end].to_vec();
                v.splice(at..at, chunk);
            }
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(other.len() + 1);
                v.truncate(at);
                v.extend_from_slice(&other[cut..]);
            }
            _ => {
                let b = rng.next() as u8;
                v.insert(at, b);
            }
        }
    }
    v
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    files.iter().map(|f| fs::read(f).expect("a seed")).collect()
}

fn replay(target: &str, run: fn(&[u8])) {
    let seeds = seeds(target);
    assert!(seeds.len() >= 3, "{target}: commit at least three seeds");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ target.len() as u64);
    let inputs = seeds
        .iter()
        .cloned()
        .chain((0..MUTATIONS).map(|_| mutate(&mut rng, &seeds)));
    for input in inputs {
        let caught = std::panic::catch_unwind(|| run(&input));
        if caught.is_err() {
            panic!("{target} failed on b\"{}\"", input.escape_ascii());
        }
    }
}

#[test]
fn every_target_has_a_corpus_and_a_test() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut on_disk: Vec<String> = fs::read_dir(dir)
        .expect("fuzz/corpus")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    on_disk.sort();
    let mut listed: Vec<&str> = layer_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
    listed.sort_unstable();
    assert_eq!(on_disk, listed);
}

macro_rules! replay_tests {
    ($($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name), layer_fuzz::$name::run);
            }
        )*
    };
}

replay_tests!(
    stamp_write,
    inject_filter,
    plan_query,
    merge,
    filter_eval,
    history_params,
    path_decode,
    route_match,
    h1_answer,
    h1_request,
    raw_walk
);

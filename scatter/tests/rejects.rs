//! Hostile bodies through the public API: every entry point must reject them with the right
//! error (and never panic).

use scatter::{Limits, RewriteError, StampOptions, inject_filter, stamp_write, stamp_write_bytes};

const PRED: &[u8] = br#"["_hevlayer_upserted_at","Lte",1]"#;

/// Runs `body` through validation, stamping and injection; all three must fail the same way.
fn all_reject(body: &[u8], limits: &Limits) -> RewriteError {
    let v = scatter::validate(body, limits).expect_err("validate accepted");
    let s = stamp_write(body, 1, limits).expect_err("stamp_write accepted");
    let b = stamp_write_bytes(
        &bytes::Bytes::copy_from_slice(body),
        &StampOptions::new(1),
        limits,
    )
    .expect_err("stamp_write_bytes accepted");
    let i = inject_filter(body, PRED, limits).expect_err("inject_filter accepted");
    assert_eq!(v, s);
    assert_eq!(v, b);
    assert_eq!(v, i);
    v
}

#[test]
fn duplicate_keys_top_level_and_nested() {
    let limits = Limits::default();
    for body in [
        &br#"{"filters":["t","Eq",1],"top_k":1,"filters":["t","Eq",2]}"#[..],
        br#"{"filters":["t","Eq",1],"\u0066ilters":["t","Eq",2]}"#,
        br#"{"queries":[{"top_k":1},{"filters":1,"top_k":1,"filters":2}]}"#,
        br#"{"upsert_rows":[{"id":1,"id":2}]}"#,
        br#"{"patch_by_filter":{"filters":1,"patch":{},"filters":2}}"#,
        br#"{"upsert_rows":[{"id":1,"m":{"a":{"b":1,"b":2}}}]}"#,
    ] {
        let e = all_reject(body, &limits);
        assert!(matches!(e, RewriteError::DuplicateKey { .. }), "{e:?}");
        assert_eq!(e.status_code(), 422);
    }
}

#[test]
fn depth_bombs() {
    let limits = Limits::default();
    let bombs: Vec<Vec<u8>> = vec![
        // Unclosed and closed, arrays and objects, in rows and in filters.
        [b"{\"a\":".as_slice(), &[b'['; 100_000]].concat(),
        [b"{\"filters\":".as_slice(), &[b'['; 65], &[b']'; 65], b"}"].concat(),
        [
            b"{\"upsert_rows\":[".as_slice(),
            &b"{\"a\":".repeat(70),
            b"1",
            &[b'}'; 70],
            b"]}",
        ]
        .concat(),
    ];
    for bomb in &bombs {
        let e = all_reject(bomb, &limits);
        assert_eq!(e, RewriteError::TooDeep { max: 64 });
        assert_eq!(e.status_code(), 400);
    }
    // 64 levels exactly is fine: the top-level object plus 63 nested arrays. Run on a big stack:
    // without `[profile.dev.package.sonic-rs] opt-level = 3`, sonic-rs's validating skip costs
    // tens of KiB of stack per level in unoptimised builds (see the crate docs).
    let ok = [b"{\"deletes\":".as_slice(), &[b'['; 63], &[b']'; 63], b"}"].concat();
    let stamped = std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(move || stamp_write(&ok, 1, &Limits::default()).is_ok())
        .unwrap()
        .join()
        .unwrap();
    assert!(stamped);
}

#[test]
fn oversize() {
    let limits = Limits {
        max_body_bytes: 1024,
        ..Limits::default()
    };
    let body = format!(r#"{{"deletes":["{}"]}}"#, "x".repeat(2000));
    let e = all_reject(body.as_bytes(), &limits);
    assert!(
        matches!(e, RewriteError::Oversize { max: 1024, .. }),
        "{e:?}"
    );
    assert_eq!(e.status_code(), 413);
    assert_eq!(e.error_code(), "payload_too_large");
}

#[test]
fn trailing_garbage_and_broken_json() {
    let limits = Limits::default();
    for body in [
        &br#"{"deletes":[1]} x"#[..],
        br#"{"deletes":[1]}{"deletes":[2]}"#,
        br#"{"deletes":[1]}]"#,
        br#"{"deletes":[1]"#,
        br#"{"deletes":[1,]}"#,
        br#"{"deletes":[1] "x":1}"#,
        b"{\"deletes\":[1]}\0",
        b"{\"deletes\":[\"\xc3\x28\"]}",
    ] {
        let e = all_reject(body, &limits);
        assert!(matches!(e, RewriteError::InvalidJson { .. }), "{e:?}");
        assert_eq!(e.status_code(), 400);
    }
}

#[test]
fn non_object_bodies() {
    let limits = Limits::default();
    for body in [
        &b"[]"[..],
        b"\"{}\"",
        b"1",
        b"null",
        b"true",
        b" [{\"deletes\":[1]}]",
    ] {
        assert_eq!(all_reject(body, &limits), RewriteError::NotAnObject);
    }
    assert!(matches!(
        all_reject(b"", &limits),
        RewriteError::InvalidJson { .. }
    ));
}

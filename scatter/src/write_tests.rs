//! Unit tests for [`super`] (write stamping).

use super::*;

const NOW: u64 = 1_700_000_000_000;

fn stamp(body: &str) -> Result<String, RewriteError> {
    stamp_write(body.as_bytes(), NOW, &Limits::default()).map(|b| String::from_utf8(b).unwrap())
}

#[test]
fn stamps_rows_as_first_key_and_keeps_everything_else() {
    let body = r#"{"upsert_rows":[{"id":18446744073709551615,"vector":"zczMPc3MTD6amZk+","p":1.10},{}], "distance_metric":"cosine_distance"}"#;
    assert_eq!(
        stamp(body).unwrap(),
        r#"{"upsert_rows":[{"_hevlayer_upserted_at":1700000000000,"id":18446744073709551615,"vector":"zczMPc3MTD6amZk+","p":1.10},{"_hevlayer_upserted_at":1700000000000}], "distance_metric":"cosine_distance"}"#
    );
}

#[test]
fn stamps_patch_rows_and_whitespace_rows() {
    assert_eq!(
        stamp("{\"patch_rows\" : [ { \"id\" : \"a\" } ]}").unwrap(),
        "{\"patch_rows\" : [ {\"_hevlayer_upserted_at\":1700000000000, \"id\" : \"a\" } ]}"
    );
}

#[test]
fn stamps_columns_with_a_full_column() {
    assert_eq!(
        stamp(r#"{"upsert_columns":{"id":[1,2,3],"t":["a","b","c"]}}"#).unwrap(),
        r#"{"upsert_columns":{"_hevlayer_upserted_at":[1700000000000,1700000000000,1700000000000],"id":[1,2,3],"t":["a","b","c"]}}"#
    );
    assert_eq!(
        stamp(r#"{"patch_columns":{"id":[]}}"#).unwrap(),
        r#"{"patch_columns":{"_hevlayer_upserted_at":[],"id":[]}}"#
    );
}

#[test]
fn stamps_patch_by_filter_patch() {
    assert_eq!(
        stamp(r#"{"patch_by_filter":{"filters":["c","Eq","fish"],"patch":{"c":"reef"}}}"#).unwrap(),
        r#"{"patch_by_filter":{"filters":["c","Eq","fish"],"patch":{"_hevlayer_upserted_at":1700000000000,"c":"reef"}}}"#
    );
    assert_eq!(
        stamp(r#"{"patch_by_filter":{"patch":{},"filters":["c","Eq","fish"]}}"#).unwrap(),
        r#"{"patch_by_filter":{"patch":{"_hevlayer_upserted_at":1700000000000},"filters":["c","Eq","fish"]}}"#
    );
}

#[test]
fn non_stamping_writes_pass_through_unchanged() {
    for body in [
        r#"{"deletes":[1,2]}"#,
        r#"{"delete_by_filter":["_hevlayer_upserted_at","Lt",5]}"#,
        r#"{"copy_from_namespace":"src"}"#,
        r#"{"branch_from_namespace":{"source_namespace":"src"}}"#,
        r#"{"schema":{"title":{"type":"string"}}}"#,
        r#"{"upsert_rows":[],"deletes":[1]}"#,
        r#"{"upsert_rows":null,"deletes":[1]}"#,
    ] {
        assert_eq!(stamp(body).unwrap(), body);
        let bytes = Bytes::from(body.to_owned());
        let out = stamp_write_bytes(&bytes, &StampOptions::new(NOW), &Limits::default()).unwrap();
        assert_eq!(out.as_ptr(), bytes.as_ptr(), "expected no copy for {body}");
    }
}

#[test]
fn no_write_operation() {
    for body in [
        "{}",
        r#"{"distance_metric":"cosine_distance"}"#,
        r#"{"upsert_rows":null}"#,
        r#"{"upsert_condition":["id","Eq",null]}"#,
    ] {
        assert_eq!(stamp(body), Err(RewriteError::NoWriteOperation), "{body}");
    }
}

#[test]
fn reserved_attributes_are_rejected_everywhere_callers_set_them() {
    for (body, attr) in [
        (
            r#"{"upsert_rows":[{"id":1,"_hevlayer_upserted_at":5}]}"#,
            "_hevlayer_upserted_at",
        ),
        (
            r#"{"patch_rows":[{"id":1},{"id":2,"_hevlayer_x":5}]}"#,
            "_hevlayer_x",
        ),
        (
            r#"{"upsert_columns":{"id":[1],"_hevlayer_shard":[1]}}"#,
            "_hevlayer_shard",
        ),
        (
            r#"{"patch_columns":{"\u005fhevlayer_y":[1],"id":[1]}}"#,
            "_hevlayer_y",
        ),
        (
            r#"{"patch_by_filter":{"filters":["a","Eq",1],"patch":{"_hevlayer_udf__v":"1"}}}"#,
            "_hevlayer_udf__v",
        ),
        (
            r#"{"schema":{"_hevlayer_upserted_at":"uint"}}"#,
            "_hevlayer_upserted_at",
        ),
    ] {
        assert_eq!(
            stamp(body),
            Err(RewriteError::ReservedAttribute {
                attribute: attr.into()
            }),
            "{body}"
        );
    }
    // Reading reserved attributes (in filters, values) is fine; only setting them is not.
    assert!(stamp(r#"{"upsert_rows":[{"id":1,"note":"_hevlayer_x"}],"upsert_condition":["_hevlayer_upserted_at","Lt",1]}"#).is_ok());
}

#[test]
fn malformed_shapes() {
    for body in [
        r#"{"upsert_rows":{"id":1}}"#,
        r#"{"upsert_rows":[1]}"#,
        r#"{"patch_rows":"x"}"#,
        r#"{"upsert_columns":[]}"#,
        r#"{"upsert_columns":{"t":["a"]}}"#,
        r#"{"upsert_columns":{"id":1}}"#,
        r#"{"patch_by_filter":[]}"#,
        r#"{"patch_by_filter":{"filters":["a","Eq",1]}}"#,
        r#"{"patch_by_filter":{"filters":["a","Eq",1],"patch":null}}"#,
        r#"{"schema":[]}"#,
    ] {
        assert!(
            matches!(stamp(body), Err(RewriteError::Malformed { .. })),
            "{body}"
        );
    }
}

#[test]
fn validation_comes_first() {
    assert!(matches!(
        stamp(r#"{"upsert_rows":[{"id":1,"a":1,"a":2}]}"#),
        Err(RewriteError::DuplicateKey { .. })
    ));
    assert!(matches!(
        stamp(r#"{"deletes":[1]} x"#),
        Err(RewriteError::InvalidJson { .. })
    ));
    assert_eq!(stamp("[]"), Err(RewriteError::NotAnObject));
}

#[test]
fn shard_stamp_uses_the_decoded_id() {
    let shard = |id: &IdRef<'_>| match id.value() {
        IdValue::Uint(n) => (n % 7) as u32,
        IdValue::Str(s) => s.len() as u32,
        IdValue::Other => 99,
    };
    let opts = StampOptions {
        now_ms: 5,
        shard: Some(&shard),
        own_reserved: &[],
    };
    let body = br#"{"upsert_rows":[{"id":18446744073709551615},{"id":"a\u0062c","x":1}],"upsert_columns":{"id":[9 ,"xy", -1 ]},"patch_by_filter":{"filters":null,"patch":{"a":1}}}"#;
    let out = stamp_write_with(body, &opts, &Limits::default()).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"upsert_rows":[{"_hevlayer_upserted_at":5,"_hevlayer_shard":1,"id":18446744073709551615},{"_hevlayer_upserted_at":5,"_hevlayer_shard":3,"id":"a\u0062c","x":1}],"upsert_columns":{"_hevlayer_upserted_at":[5,5,5],"_hevlayer_shard":[2,2,99],"id":[9 ,"xy", -1 ]},"patch_by_filter":{"filters":null,"patch":{"_hevlayer_upserted_at":5,"a":1}}}"#
    );
    let missing = stamp_write_with(br#"{"upsert_rows":[{"x":1}]}"#, &opts, &Limits::default());
    assert!(matches!(missing, Err(RewriteError::Malformed { .. })));
}

#[test]
fn id_ref_decoding() {
    assert_eq!(IdRef::parse("42").value(), &IdValue::Uint(42));
    assert_eq!(
        IdRef::parse("18446744073709551615").value(),
        &IdValue::Uint(u64::MAX)
    );
    assert_eq!(
        IdRef::parse("18446744073709551616").value(),
        &IdValue::Other
    );
    assert_eq!(IdRef::parse("1.5").value(), &IdValue::Other);
    assert_eq!(IdRef::parse("-1").value(), &IdValue::Other);
    assert_eq!(IdRef::parse(r#""ab""#).value(), &IdValue::Str("ab".into()));
    assert_eq!(
        IdRef::parse(r#""a\"b""#).value(),
        &IdValue::Str("a\"b".into())
    );
    assert_eq!(IdRef::parse(r#""a\"b""#).raw(), r#""a\"b""#);
}

#[test]
fn push_u64_formats_like_display() {
    for n in [0, 1, 9, 10, 1_700_000_000_000, u64::MAX] {
        // Four inline bytes: the longer numbers spill to the heap, as a write's stamps do.
        let mut buf: SmallVec<[u8; 4]> = SmallVec::new();
        push_u64(&mut buf, n);
        assert_eq!(&buf[..], n.to_string().as_bytes());
    }
}

#[test]
fn own_reserved_markers_pass_only_when_named() {
    let body = br#"{"patch_columns":{"id":[1],"_hevlayer_udf_t_v":["v1"],"tags":["a"]}}"#;
    let refused = stamp_write(body, 5, &Limits::default()).unwrap_err();
    assert!(matches!(refused, RewriteError::ReservedAttribute { .. }));
    let own = ["_hevlayer_udf_t_v"];
    let mut opts = StampOptions::new(5);
    opts.own_reserved = &own;
    let out = stamp_write_with(body, &opts, &Limits::default()).unwrap();
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains("\"_hevlayer_udf_t_v\":[\"v1\"]")
    );
    // Naming one marker does not open the others.
    let other = br#"{"patch_rows":[{"id":1,"_hevlayer_upserted_at":1}]}"#;
    assert!(stamp_write_with(other, &opts, &Limits::default()).is_err());
}

#[test]
fn stale_after_markers_are_caller_settable() {
    let body = br#"{"patch_rows":[{"id":1,"_hevlayer_udf_tag_products_stale_after":"2026-01-01T00:00:00Z"}]}"#;
    assert!(stamp_write(body, 5, &Limits::default()).is_ok());
    for key in [
        "_hevlayer_udf__stale_after",
        "_hevlayer_udf_x_v",
        "_hevlayer_stale_after",
    ] {
        let body = format!(r#"{{"patch_rows":[{{"id":1,"{key}":"x"}}]}}"#);
        assert!(
            stamp_write(body.as_bytes(), 5, &Limits::default()).is_err(),
            "{key}"
        );
    }
}

#[test]
fn a_validated_write_stamps_like_a_checked_one_and_keeps_the_size_cap() {
    let body = Bytes::from_static(br#"{"upsert_rows":[{"id":1},{"id":"a"}],"deletes":[2]}"#);
    let opts = StampOptions::new(7);
    let limits = Limits::default();
    let checked = stamp_write_touched(&body, &opts, &limits).unwrap();
    let valid = Validated::serialized(body.clone());
    let trusted = stamp_validated_touched(&valid, &opts, &limits).unwrap();
    assert_eq!(trusted.0, checked.0);
    assert_eq!(trusted.1.written, checked.1.written);
    assert_eq!(trusted.1.deleted, checked.1.deleted);
    let tiny = Limits {
        max_body_bytes: body.len() - 1,
        ..Limits::default()
    };
    assert!(matches!(
        stamp_validated_touched(&valid, &opts, &tiny),
        Err(RewriteError::Oversize { .. })
    ));
}

/// Rows read by structure (`raw::members_of_checked`): whitespace between and inside rows,
/// values holding brackets and quotes in strings, nested containers, an id after them; and
/// an escaped reserved key is still refused. The same through a validated body.
#[test]
fn rows_are_read_by_structure_with_the_same_stamps_ids_and_errors() {
    let body = Bytes::from_static(
        br#"{"upsert_rows":[ {} , { "v" : [[1,2],{"a":"]}[{\"x"}], "s":"{[", "id" : 7 } ,{"id":"b\u0041","n":-1.5e3}] }"#,
    );
    let opts = StampOptions::new(7);
    let limits = Limits::default();
    let (out, touched) = stamp_write_touched(&body, &opts, &limits).unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"upsert_rows":[ {"_hevlayer_upserted_at":7} , {"_hevlayer_upserted_at":7, "v" : [[1,2],{"a":"]}[{\"x"}], "s":"{[", "id" : 7 } ,{"_hevlayer_upserted_at":7,"id":"b\u0041","n":-1.5e3}] }"#
    );
    assert_eq!(touched.written, ["7", r#""b\u0041""#]);
    let valid = Validated::serialized(body.clone());
    let (trusted, ids) = stamp_validated_touched(&valid, &opts, &limits).unwrap();
    assert_eq!((trusted, ids.written), (out, touched.written));
    for bad in [
        &br#"{"upsert_rows":[{"id":1,"x":[1]},{"\u005fhevlayer_x":1}]}"#[..],
        br#"{"upsert_rows":[{"id":1},[1]]}"#,
        br#"{"patch_rows":{"id":1}}"#,
    ] {
        let body = Bytes::from_static(bad);
        let checked = stamp_write_touched(&body, &opts, &limits).unwrap_err();
        let valid = Validated::serialized(body.clone());
        let trusted = stamp_validated_touched(&valid, &opts, &limits);
        assert_eq!(trusted.unwrap_err(), checked);
    }
    let err =
        |b: &'static [u8]| stamp_write_touched(&Bytes::from_static(b), &opts, &limits).unwrap_err();
    assert!(
        matches!(err(br#"{"upsert_rows":[{"id":1,"x":[1]},{"\u005fhevlayer_x":1}]}"#), RewriteError::ReservedAttribute { attribute } if attribute == "_hevlayer_x")
    );
    assert!(
        err(br#"{"upsert_rows":[{"id":1},[1]]}"#)
            .to_string()
            .contains("`upsert_rows[1]` must be an object")
    );
}

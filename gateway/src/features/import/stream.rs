//! The import loop: the request body read chunk by chunk into Arrow's push decoder, each record
//! batch written as soon as it is complete, in slices of at most [`ROWS_PER_WRITE`] rows and
//! [`BYTES_PER_WRITE`] bytes, one write in flight at a time (the client's upload waits on
//! upstream: memory stays at one record batch plus one write body, whatever the stream's size).
//!
//! Every slice goes through the gateway's write path ([`crate::sources::writes::write`]):
//! stamped (`_hevlayer_upserted_at`, and `_hevlayer_shard` on a sharded namespace), in flight
//! for the watcher, the touched ids invalidated in the document cache before and after.
//!
//! Failures stop the import and answer with what was done: `batch` (0-based index of the Arrow
//! record batch that could not be read or written; the schema counts as part of batch 0) and
//! `rows_written` (rows upstream acknowledged: whole earlier batches, and any slices of this one).
//! An unreadable stream or unmappable rows are 422 `validation_error`; upstream's refusal keeps
//! upstream's status (`upstream_error` code, upstream's body under `upstream`); a body past
//! `maxBodyBytes` is 413 and a stalled upload 408.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{Map, Value, json};

use super::arrow::{check_schema, encode, has_vector, prepare};
use crate::core::ShardCtx;
use crate::core::error::GatewayError;
use crate::core::router::StreamedBody;
use crate::sources::writes::write;

/// Most rows in one upstream write.
pub const ROWS_PER_WRITE: usize = 1000;
/// Most bytes in one upstream write body (a slice past it is halved; a single row past it is
/// written alone, within `maxBodyBytes` upstream-side rules).
pub const BYTES_PER_WRITE: usize = 8 << 20;

/// What an import did so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Record batches fully written (also the index of the batch in hand).
    pub batches: u64,
    pub rows_written: u64,
    /// Upstream writes made.
    pub writes: u64,
}

/// How an import is bounded and where its rows go.
pub struct Plan<'a> {
    pub ns: &'a str,
    pub max_body_bytes: usize,
    pub read_timeout: Duration,
    /// The `distance_metric` asked for (`?distance_metric=`, else the index's
    /// `backend.distanceMetric`); see [`metric_for`] for a stream with a vector column without one.
    pub metric: Option<&'a str>,
}

/// The default metric of a new vector namespace.
pub const DEFAULT_METRIC: &str = "cosine_distance";

/// The `distance_metric` of a stream with a vector column: the one asked for, else the stream
/// schema's `distance_metric` metadata, else the one the namespace already has upstream, else
/// [`DEFAULT_METRIC`] (upstream refuses a vector write without one, and one that differs from
/// the namespace's).
async fn metric_for(ctx: &ShardCtx, plan: &Plan<'_>, schema: &arrow_schema::Schema) -> String {
    if let Some(m) = plan.metric {
        return m.to_string();
    }
    if let Some(m) = schema.metadata().get("distance_metric") {
        return m.clone();
    }
    let path = format!("/v1/namespaces/{}/metadata", plan.ns);
    let up = ctx
        .upstream(plan.ns)
        .send(
            "import",
            http::Method::GET,
            &path,
            &http::HeaderMap::new(),
            Bytes::new(),
        )
        .await;
    let existing = up.ok().filter(|u| u.status.is_success()).and_then(|u| {
        let v: Value = serde_json::from_slice(&u.body).ok()?;
        v.get("schema")?.as_object()?.values().find_map(|t| {
            t.get("ann")?
                .get("distance_metric")?
                .as_str()
                .map(str::to_string)
        })
    });
    existing.unwrap_or_else(|| DEFAULT_METRIC.to_string())
}

/// A failure with what was done before it.
fn failed(e: GatewayError, p: &Progress) -> GatewayError {
    let mut detail = match e.body() {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    detail.remove("error");
    detail.remove("message");
    detail.insert("batch".into(), json!(p.batches));
    detail.insert("rows_written".into(), json!(p.rows_written));
    detail.insert("writes".into(), json!(p.writes));
    GatewayError::Detailed {
        status: e.status(),
        code: e.code(),
        message: format!(
            "import stopped at arrow batch {} ({} rows written before it): {e}",
            p.batches, p.rows_written
        ),
        detail,
    }
}

fn bad(msg: impl std::fmt::Display) -> GatewayError {
    GatewayError::Validation(msg.to_string())
}

/// Reads the whole stream from `body`, writing as it goes. `Ok` is the final progress.
pub async fn run(
    ctx: &Arc<ShardCtx>,
    plan: &Plan<'_>,
    mut body: StreamedBody,
) -> Result<Progress, GatewayError> {
    let mut received = 0usize;
    match decode_and_write(ctx, plan, &mut body, &mut received).await {
        Ok(p) => Ok(p),
        Err(Stop { error, drain }) => {
            if drain {
                // The client may still be uploading: read the rest (within the body bound) so
                // that it gets this answer instead of a reset connection.
                let budget = plan.max_body_bytes.saturating_sub(received);
                let rest = http_body_util::Limited::new(body, budget).collect();
                let _ = tokio::time::timeout(plan.read_timeout, rest).await;
            }
            Err(error)
        }
    }
}

/// Why an import stopped, and whether the body is still open (to be drained before answering).
struct Stop {
    error: GatewayError,
    drain: bool,
}

impl From<GatewayError> for Stop {
    fn from(error: GatewayError) -> Stop {
        Stop { error, drain: true }
    }
}

/// A failure of the body itself (nothing left to drain).
fn body_failed(e: GatewayError, p: &Progress) -> Stop {
    Stop {
        error: failed(e, p),
        drain: false,
    }
}

async fn decode_and_write(
    ctx: &Arc<ShardCtx>,
    plan: &Plan<'_>,
    body: &mut StreamedBody,
    received: &mut usize,
) -> Result<Progress, Stop> {
    let mut p = Progress::default();
    let mut decoder = StreamDecoder::new();
    let mut metric: Option<Option<String>> = None;
    let mut scratch = Vec::new();
    loop {
        let frame = match tokio::time::timeout(plan.read_timeout, body.frame()).await {
            Err(_) => {
                let e = GatewayError::RequestTimeout(format!(
                    "no part of the request body arrived within {} ms",
                    plan.read_timeout.as_millis()
                ));
                return Err(body_failed(e, &p));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                let e = bad(format!("reading the request body: {e}"));
                return Err(body_failed(e, &p));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        *received += data.len();
        if *received > plan.max_body_bytes {
            let e = GatewayError::PayloadTooLarge(format!(
                "request body rejected (limit {} bytes)",
                plan.max_body_bytes
            ));
            return Err(body_failed(e, &p));
        }
        let mut buf = Buffer::from(data);
        while !buf.is_empty() {
            let decoded = decoder
                .decode(&mut buf)
                .map_err(|e| failed(bad(format!("arrow batch {}: {e}", p.batches)), &p))?;
            if metric.is_none()
                && let Some(schema) = decoder.schema()
            {
                check_schema(&schema).map_err(|e| failed(bad(format!("arrow schema: {e}")), &p))?;
                metric = Some(if has_vector(&schema) {
                    Some(metric_for(ctx, plan, &schema).await)
                } else {
                    None
                });
            }
            if let Some(batch) = decoded {
                let m = metric.as_ref().and_then(Option::as_deref);
                write_batch(ctx, plan.ns, &batch, m, &mut scratch, &mut p).await?;
                p.batches += 1;
            }
        }
    }
    decoder.finish().map_err(|e| {
        failed(
            bad(format!(
                "the stream ends inside arrow batch {}: {e}",
                p.batches
            )),
            &p,
        )
    })?;
    if decoder.schema().is_none() {
        return Err(body_failed(
            bad("the body is not an Arrow IPC stream (no schema message)"),
            &p,
        ));
    }
    Ok(p)
}

/// Writes one record batch in bounded slices.
async fn write_batch(
    ctx: &Arc<ShardCtx>,
    ns: &str,
    batch: &RecordBatch,
    metric: Option<&str>,
    scratch: &mut Vec<u8>,
    p: &mut Progress,
) -> Result<(), GatewayError> {
    let batch = prepare(batch);
    let rows = batch.rows();
    let mut offset = 0;
    let mut step = ROWS_PER_WRITE;
    while offset < rows {
        let len = step.min(rows - offset);
        encode(&batch, offset, len, metric, scratch)
            .map_err(|e| failed(bad(format!("arrow batch {}, {e}", p.batches)), p))?;
        if scratch.len() > BYTES_PER_WRITE && len > 1 {
            step = len.div_ceil(2);
            continue;
        }
        // Encoded here from a checked schema: unique column names, no reserved ones.
        let body = scatter::Validated::serialized(Bytes::copy_from_slice(scratch));
        let up = write(ctx, "import", ns, body)
            .await
            .map_err(|e| failed(e, p))?;
        if !up.status.is_success() {
            let upstream = serde_json::from_slice::<Value>(&up.body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&up.body).into_owned()));
            let status = up.status;
            let mut detail = Map::new();
            detail.insert("upstream".into(), upstream);
            let e = GatewayError::Detailed {
                status: if status.is_client_error() || status.is_server_error() {
                    status
                } else {
                    StatusCode::BAD_GATEWAY
                },
                code: "upstream_error",
                message: format!("upstream refused a write of {len} rows with {status}"),
                detail,
            };
            return Err(failed(e, p));
        }
        p.rows_written += len as u64;
        p.writes += 1;
        offset += len;
        step = ROWS_PER_WRITE;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::Frame;

    use super::*;
    use crate::core::router::Router;
    use crate::core::upstream::{Upstream, Upstreams};
    use crate::core::{ShardCtx, test_core};

    fn stream_of(batches: &[RecordBatch]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w =
            arrow_ipc::writer::StreamWriter::try_new(&mut out, &batches[0].schema()).unwrap();
        for b in batches {
            w.write(b).unwrap();
        }
        w.finish().unwrap();
        drop(w);
        out
    }

    /// `bytes` as a request body arriving `chunk` bytes at a time.
    fn chunked(bytes: &[u8], chunk: usize) -> StreamedBody {
        let frames: Vec<Result<Frame<Bytes>, Infallible>> = bytes
            .chunks(chunk)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
            .map_err(|never| match never {})
            .boxed()
    }

    fn rows(ids: std::ops::Range<i64>) -> RecordBatch {
        let names: Vec<String> = ids.clone().map(|i| format!("n{i}")).collect();
        RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(Int64Array::from_iter_values(ids)) as ArrayRef,
            ),
            ("name", Arc::new(StringArray::from(names))),
        ])
        .unwrap()
    }

    /// However the body is cut into chunks (message headers, flatbuffers and buffers split at
    /// any byte), the decoder sees the same batches; slices are bounded by `ROWS_PER_WRITE`;
    /// a stream cut short names the batch it ends in.
    #[tokio::test]
    async fn chunked_streams_import_whole_and_cut_streams_name_their_batch() {
        let emu = turbopuffer_emulator::start(turbopuffer_emulator::Config {
            api_keys: vec!["test-key".into()],
            ..Default::default()
        })
        .await
        .unwrap();
        let t = Duration::from_secs(5);
        let up = Upstream::new(&format!("http://{}", emu.addr), Some("test-key"), t, t).unwrap();
        let ctx = Arc::new(ShardCtx::new(
            test_core(),
            Upstreams::single(up),
            Arc::new(Router::new(vec![]).unwrap()),
        ));
        let plan = |ns| Plan {
            ns,
            max_body_bytes: 1 << 20,
            read_timeout: Duration::from_secs(5),
            metric: None,
        };
        let body = stream_of(&[rows(0..1500), rows(1500..1600), rows(1600..1601)]);
        for chunk in [7, 1000, body.len()] {
            let p = run(&ctx, &plan("chunks"), chunked(&body, chunk))
                .await
                .unwrap();
            assert_eq!(
                p,
                Progress {
                    batches: 3,
                    rows_written: 1601,
                    writes: 4
                },
                "chunks of {chunk}"
            );
        }
        let cut = &body[..body.len() - 20];
        let e = run(&ctx, &plan("chunks"), chunked(cut, 64))
            .await
            .unwrap_err();
        let b = e.body();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            (b["batch"].clone(), b["rows_written"].clone()),
            (json!(2), json!(1600))
        );
        // Past the body bound: 413 with what was written.
        let small = Plan {
            max_body_bytes: 100,
            ..plan("chunks")
        };
        let e = run(&ctx, &small, chunked(&body, 64)).await.unwrap_err();
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(e.body()["rows_written"], 0);
    }
}

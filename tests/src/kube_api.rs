//! A scripted Kubernetes API server for the gateway's watch (`gateway.kubernetes`): plain HTTP
//! on `127.0.0.1:0`, one thread per connection. It serves LIST (`GET <collection>`) with a
//! resource version and WATCH (`GET <collection>?watch=1&resourceVersion=N`) as a chunked stream
//! of JSON lines, replaying every event after `N` and then each new one as the test makes it.
//!
//! The test plays the cluster: [`FakeApiServer::apply`] / [`FakeApiServer::delete`] emit
//! ADDED/MODIFIED/DELETED events, [`FakeApiServer::bookmark`] a BOOKMARK,
//! [`FakeApiServer::drop_watches`] cuts every open watch mid-stream, [`FakeApiServer::compact`]
//! makes watches from older versions answer 410 (as a status, or as an `ERROR` event in the
//! stream), and [`FakeApiServer::set_silently`] changes an object without an event, so only a
//! new LIST can reveal it. A `GET` of `<collection>/<name>` answers that one object (404 when
//! absent), as a Secret read does. It records each request's path and `Authorization` header.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// One recorded request: path with query, and the bearer it carried.
#[derive(Clone, Debug)]
pub struct Seen {
    pub target: String,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct State {
    rv: u64,
    /// Objects by collection path, then name.
    objects: HashMap<String, BTreeMap<String, Value>>,
    /// Every event: version, collection (`*` for a bookmark to all), type, object.
    log: Vec<(u64, String, &'static str, Value)>,
    /// Watches from a version below this answer 410.
    compacted: u64,
    /// 410 as an `ERROR` event in a 200 stream (else a 410 status).
    gone_as_event: bool,
    /// Bumped by `drop_watches`: a watch of an older generation is cut.
    generation: u64,
    seen: Vec<Seen>,
}

/// The server (its accept thread lives as long as the test process).
pub struct FakeApiServer {
    pub addr: SocketAddr,
    shared: Arc<(Mutex<State>, Condvar)>,
}

impl FakeApiServer {
    pub fn start() -> FakeApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared: Arc<(Mutex<State>, Condvar)> = Arc::default();
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || serve(conn, &s));
            }
        });
        FakeApiServer { addr, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let (m, cv) = &*self.shared;
        let out = f(&mut m.lock().unwrap_or_else(|e| e.into_inner()));
        cv.notify_all();
        out
    }

    /// Creates or replaces an object (`metadata.name` names it): ADDED or MODIFIED.
    pub fn apply(&self, collection: &str, mut object: Value) {
        self.with(|s| {
            s.rv += 1;
            object["metadata"]["resourceVersion"] = json!(s.rv.to_string());
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let objects = s.objects.entry(collection.into()).or_default();
            let kind = if objects.contains_key(&name) {
                "MODIFIED"
            } else {
                "ADDED"
            };
            objects.insert(name, object.clone());
            let rv = s.rv;
            s.log.push((rv, collection.into(), kind, object));
        });
    }

    /// Deletes an object: DELETED.
    pub fn delete(&self, collection: &str, name: &str) {
        self.with(|s| {
            s.rv += 1;
            let rv = s.rv;
            if let Some(mut o) = s.objects.entry(collection.into()).or_default().remove(name) {
                o["metadata"]["resourceVersion"] = json!(rv.to_string());
                s.log.push((rv, collection.into(), "DELETED", o));
            }
        });
    }

    /// Sets (`Some`) or removes (`None`) an object without an event: only a LIST shows it.
    pub fn set_silently(&self, collection: &str, name: &str, object: Option<Value>) {
        self.with(|s| {
            s.rv += 1;
            let rv = s.rv.to_string();
            let objects = s.objects.entry(collection.into()).or_default();
            match object {
                Some(mut o) => {
                    o["metadata"]["resourceVersion"] = json!(rv);
                    objects.insert(name.into(), o);
                }
                None => {
                    objects.remove(name);
                }
            }
        });
    }

    /// A BOOKMARK on every watch.
    pub fn bookmark(&self) {
        self.with(|s| {
            s.rv += 1;
            let rv = s.rv;
            let o = json!({"metadata": {"resourceVersion": rv.to_string()}});
            s.log.push((rv, "*".into(), "BOOKMARK", o));
        });
    }

    /// Cuts every open watch (the connection is closed mid-stream).
    pub fn drop_watches(&self) {
        self.with(|s| s.generation += 1);
    }

    /// Watches from any version seen so far answer 410: with `as_event`, a 200 stream whose
    /// one line is an `ERROR` event with code 410; else a 410 status.
    pub fn compact(&self, as_event: bool) {
        self.with(|s| {
            s.rv += 1;
            s.compacted = s.rv;
            s.gone_as_event = as_event;
        });
    }

    /// Requests so far (path with query, bearer).
    pub fn seen(&self) -> Vec<Seen> {
        self.with(|s| s.seen.clone())
    }

    /// How many LIST and WATCH requests `collection` got.
    pub fn counts(&self, collection: &str) -> (usize, usize) {
        let seen = self.seen();
        let of = |watch: bool| {
            seen.iter()
                .filter(|r| r.target.split('?').next() == Some(collection))
                .filter(|r| r.target.contains("watch=1") == watch)
                .count()
        };
        (of(false), of(true))
    }
}

fn serve(conn: TcpStream, shared: &(Mutex<State>, Condvar)) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut conn = conn;
    let mut first = String::new();
    if reader.read_line(&mut first).unwrap_or(0) == 0 {
        return;
    }
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("authorization")
        {
            authorization = Some(v.trim().to_string());
        }
    }
    let target = first.split(' ').nth(1).unwrap_or("/").to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let params: HashMap<&str, &str> = query.split('&').filter_map(|p| p.split_once('=')).collect();
    let (m, cv) = shared;
    let mut s = m.lock().unwrap_or_else(|e| e.into_inner());
    s.seen.push(Seen {
        target: target.clone(),
        authorization,
    });
    let one = path.rsplit_once('/').and_then(|(collection, name)| {
        let objects = s.objects.get(collection)?;
        (!s.objects.contains_key(path)).then(|| objects.get(name).cloned())
    });
    if let Some(found) = one
        && params.get("watch") != Some(&"1")
    {
        drop(s);
        let (status, body) = match found {
            Some(o) => ("200 OK", o.to_string()),
            None => (
                "404 Not Found",
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": "not found", "reason": "NotFound", "code": 404})
                .to_string(),
            ),
        };
        let _ = write!(
            conn,
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    }
    if params.get("watch") != Some(&"1") {
        let items: Vec<Value> = s
            .objects
            .get(path)
            .map(|o| o.values().cloned().collect())
            .unwrap_or_default();
        let body = json!({"kind": "List", "apiVersion": "v1",
            "metadata": {"resourceVersion": s.rv.to_string()}, "items": items})
        .to_string();
        drop(s);
        let _ = write!(
            conn,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    }
    let mut from: u64 = params
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if from < s.compacted {
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": format!("too old resource version: {from} ({})", s.compacted),
            "reason": "Expired", "code": 410});
        let as_event = s.gone_as_event;
        drop(s);
        if as_event {
            let line = format!("{}\n", json!({"type": "ERROR", "object": status}));
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{line}\r\n0\r\n\r\n",
                line.len()
            );
        } else {
            let body = status.to_string();
            let _ = write!(
                conn,
                "HTTP/1.1 410 Gone\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        return;
    }
    let generation = s.generation;
    if write!(
        conn,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    .is_err()
    {
        return;
    }
    loop {
        if s.generation != generation {
            // Cut mid-stream: no final chunk.
            let _ = conn.shutdown(std::net::Shutdown::Both);
            return;
        }
        let mut out = String::new();
        for (rv, collection, kind, object) in &s.log {
            if *rv > from && (collection == path || collection == "*") {
                out.push_str(&format!("{}\n", json!({"type": kind, "object": object})));
            }
        }
        from = s.rv;
        if !out.is_empty() && write!(conn, "{:x}\r\n{out}\r\n", out.len()).is_err() {
            return;
        }
        s = cv
            .wait_timeout(s, Duration::from_millis(200))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

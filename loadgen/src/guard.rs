//! The loopback guard: parses `--target` and refuses anything that is not this machine.
//!
//! `layer-loadgen` generates unbounded-looking traffic by design, so it must never be pointed at
//! a shared or remote service by accident. A target is accepted only when it is plain
//! `http://` and its host is literally `localhost`, an IPv4 address in `127.0.0.0/8`, or `[::1]`.
//! No name is ever resolved through DNS or `/etc/hosts`: `localhost` is mapped to `127.0.0.1`
//! here, so a rewritten hosts file cannot redirect the load either. IPv4-mapped IPv6 forms
//! (`[::ffff:127.0.0.1]`), unspecified addresses (`0.0.0.0`, `[::]`) and every other name are
//! refused.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A validated loopback target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The socket address connections go to (always a loopback address).
    pub addr: SocketAddr,
    /// The value sent in the `Host` header, e.g. `127.0.0.1:8080`.
    pub authority: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority)
    }
}

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardError {
    /// The URL could not be parsed at all.
    Malformed(String),
    /// A scheme other than `http`.
    Scheme(String),
    /// The host is not loopback.
    NotLoopback(String),
    /// Anything after the authority (path, query, credentials).
    Extra(String),
}

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardError::Malformed(m) => write!(f, "invalid target URL: {m}"),
            GuardError::Scheme(s) => write!(
                f,
                "refusing target scheme `{s}`: layer-loadgen speaks plain http:// to loopback only"
            ),
            GuardError::NotLoopback(h) => write!(
                f,
                "refusing target host `{h}`: layer-loadgen only sends load to loopback \
                 (127.0.0.0/8, ::1 or localhost)"
            ),
            GuardError::Extra(m) => write!(f, "invalid target URL: {m}"),
        }
    }
}

impl std::error::Error for GuardError {}

/// Parses `http://HOST[:PORT][/]` and applies the loopback rule.
pub fn parse_target(url: &str) -> Result<Target, GuardError> {
    let url = url.trim();
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| GuardError::Malformed(format!("`{url}` has no scheme (use http://…)")))?;
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(GuardError::Scheme(scheme.to_string()));
    }
    let (authority, tail) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !(tail.is_empty() || tail == "/") {
        return Err(GuardError::Extra(format!(
            "`{url}`: give only scheme, host and port; the path comes from the scenario"
        )));
    }
    if authority.contains('@') {
        return Err(GuardError::Extra(format!(
            "`{url}`: credentials in the URL are not supported"
        )));
    }
    let (host, port) = split_host_port(authority)?;
    let ip = loopback_ip(host)?;
    let addr = SocketAddr::new(ip, port);
    let authority = match ip {
        IpAddr::V6(_) => format!("[{host}]:{port}"),
        IpAddr::V4(_) => format!("{host}:{port}"),
    };
    Ok(Target { addr, authority })
}

/// Splits `host[:port]` / `[v6][:port]`; the default port is 80.
fn split_host_port(authority: &str) -> Result<(&str, u16), GuardError> {
    if authority.is_empty() {
        return Err(GuardError::Malformed("empty host".into()));
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| GuardError::Malformed(format!("unclosed `[` in `{authority}`")))?;
        match after {
            "" => (h, None),
            p if p.starts_with(':') => (h, Some(&p[1..])),
            _ => {
                return Err(GuardError::Malformed(format!(
                    "bad authority `{authority}`"
                )));
            }
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => 80,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => {
                return Err(GuardError::Malformed(format!("bad port `{p}`")));
            }
            Ok(n) => n,
        },
    };
    Ok((host, port))
}

/// The loopback rule itself.
fn loopback_ip(host: &str) -> Result<IpAddr, GuardError> {
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        // Only the dotted-quad form parses here, so `127.1` or `0x7f.1` are refused below.
        if v4.is_loopback() {
            return Ok(IpAddr::V4(v4));
        }
        return Err(GuardError::NotLoopback(host.to_string()));
    }
    if let Ok(v6) = host.parse::<Ipv6Addr>()
        && v6 == Ipv6Addr::LOCALHOST
    {
        return Ok(IpAddr::V6(v6));
    }
    Err(GuardError::NotLoopback(host.to_string()))
}

/// Re-checks a resolved socket address right before connecting (defence in depth).
pub fn is_loopback_addr(addr: &SocketAddr) -> bool {
    match addr.ip() {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6 == Ipv6Addr::LOCALHOST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback_forms() {
        let t = parse_target("http://127.0.0.1:8080").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.authority, "127.0.0.1:8080");
        let t = parse_target("http://127.4.5.6:9/").unwrap();
        assert_eq!(t.addr, "127.4.5.6:9".parse().unwrap());
        let t = parse_target("HTTP://LocalHost:3000").unwrap();
        assert_eq!(t.addr, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(t.authority, "LocalHost:3000");
        let t = parse_target("http://[::1]:7000").unwrap();
        assert_eq!(t.addr, "[::1]:7000".parse().unwrap());
        assert_eq!(t.authority, "[::1]:7000");
        assert_eq!(t.to_string(), "http://[::1]:7000");
        let t = parse_target("http://localhost").unwrap();
        assert_eq!(t.addr.port(), 80);
    }

    #[test]
    fn refuses_non_loopback_hosts() {
        for url in [
            "http://10.0.0.1:80",
            "http://0.0.0.0:80",
            "http://192.168.1.1",
            "http://128.0.0.1:80",
            "http://example.com:80",
            "http://127.0.0.1.nip.io:80",
            "http://localhost.example.com",
            "http://[::]:80",
            "http://[::ffff:127.0.0.1]:80",
            "http://[fe80::1]:80",
            "http://127.1:80",
            "http://2130706433:80",
        ] {
            let err = parse_target(url).unwrap_err();
            assert!(matches!(err, GuardError::NotLoopback(_)), "{url}: {err:?}");
            assert!(
                err.to_string().contains("only sends load to loopback"),
                "{err}"
            );
        }
    }

    #[test]
    fn refuses_other_schemes_paths_and_credentials() {
        assert!(matches!(
            parse_target("https://127.0.0.1:443"),
            Err(GuardError::Scheme(_))
        ));
        assert!(matches!(
            parse_target("127.0.0.1:80"),
            Err(GuardError::Malformed(_))
        ));
        assert!(matches!(
            parse_target("http://127.0.0.1:80/v2"),
            Err(GuardError::Extra(_))
        ));
        assert!(matches!(
            parse_target("http://user@127.0.0.1:80"),
            Err(GuardError::Extra(_))
        ));
        assert!(matches!(
            parse_target("http://127.0.0.1:0"),
            Err(GuardError::Malformed(_))
        ));
        assert!(matches!(
            parse_target("http://127.0.0.1:99999"),
            Err(GuardError::Malformed(_))
        ));
        assert!(matches!(
            parse_target("http://[::1"),
            Err(GuardError::Malformed(_))
        ));
        assert!(matches!(
            parse_target("http://"),
            Err(GuardError::Malformed(_))
        ));
    }

    #[test]
    fn resolved_address_recheck() {
        assert!(is_loopback_addr(&"127.9.9.9:1".parse().unwrap()));
        assert!(is_loopback_addr(&"[::1]:1".parse().unwrap()));
        assert!(!is_loopback_addr(&"10.1.1.1:1".parse().unwrap()));
        assert!(!is_loopback_addr(&"[::ffff:127.0.0.1]:1".parse().unwrap()));
    }
}

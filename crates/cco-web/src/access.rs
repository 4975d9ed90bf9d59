//! Who may read the dashboard.
//!
//! - Bound to a loopback address (the default): anyone on this machine, and only with a
//!   `Host` header naming a loopback address (`localhost`, `127.0.0.1`, `[::1]`, any port: an
//!   SSH tunnel may use another), so a web page elsewhere cannot reach it through a DNS name
//!   that resolves to 127.0.0.1.
//! - Bound to any other address: every request needs the access token generated at start
//!   (printed once). It is accepted as `Authorization: Bearer <token>`, as the cookie
//!   `cco_token_<port>`, or as `?token=<token>` in the URL: that answers with a redirect to the
//!   same page without it, setting the cookie (HttpOnly, SameSite=Strict), so the links, the
//!   live updates and the browser's history carry no token.
//!
//! Every answer says `Cache-Control: no-store`, `Referrer-Policy: no-referrer` and a content
//! security policy that allows only the dashboard's own script and style.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The access rules of one server.
#[derive(Debug, Clone)]
pub(crate) struct Access {
    token: Option<String>,
    /// Only loopback `Host` values are accepted (loopback binds).
    loopback_hosts: bool,
    cookie: String,
}

/// A new random token: 128 random bits from two v4 UUIDs' randomness, as 32 hex digits.
fn new_token() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{}{}", &a[..16], &b[..16])
}

impl Access {
    pub(crate) fn for_addr(addr: SocketAddr) -> Access {
        let loopback = addr.ip().is_loopback();
        Access {
            token: (!loopback).then(new_token),
            loopback_hosts: loopback,
            cookie: format!("cco_token_{}", addr.port()),
        }
    }

    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    fn host_ok(&self, headers: &HeaderMap) -> bool {
        if !self.loopback_hosts {
            return true;
        }
        let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
            return false;
        };
        // The name without its port (`[::1]:80` → `[::1]`).
        let name = match host.rsplit_once(':') {
            Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                name
            }
            _ => host,
        };
        let name = name.to_ascii_lowercase();
        name == "localhost"
            || name == "[::1]"
            || name
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    fn cookie_token<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.cookie)
            .map(|(_, value)| value)
    }
}

/// Equal, in a time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// `query` without its `token` parameter.
fn without_token(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| !pair.starts_with("token=") && !pair.is_empty())
        .collect::<Vec<_>>()
        .join("&")
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html><html><head><title>cco</title></head><body><h1>{}</h1><p>{message}</p></body></html>",
        status.canonical_reason().unwrap_or("Refused")
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The middleware: host and token checks, then the security headers on every answer.
pub(crate) async fn guard(State(access): State<Arc<Access>>, req: Request, next: Next) -> Response {
    let mut response = check(&access, req, next).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn check(access: &Access, req: Request, next: Next) -> Response {
    if !access.host_ok(req.headers()) {
        return refuse(
            StatusCode::FORBIDDEN,
            "This dashboard answers only to its loopback address.",
        );
    }
    let Some(token) = &access.token else {
        return next.run(req).await;
    };
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer
        .into_iter()
        .chain(access.cookie_token(req.headers()))
        .any(|given| same(given.trim(), token))
    {
        return next.run(req).await;
    }
    let query = req.uri().query().unwrap_or("");
    let from_query = query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("token="))
        .any(|given| same(given, token));
    if from_query {
        let rest = without_token(query);
        let location = if rest.is_empty() {
            req.uri().path().to_string()
        } else {
            format!("{}?{rest}", req.uri().path())
        };
        let cookie = format!(
            "{}={token}; Path=/; HttpOnly; SameSite=Strict",
            access.cookie
        );
        return (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, location), (header::SET_COOKIE, cookie)],
        )
            .into_response();
    }
    refuse(
        StatusCode::UNAUTHORIZED,
        "This dashboard needs its access token (printed when it started): open the URL with ?token=…, or send Authorization: Bearer ….",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &b));
        assert!(!same(&a, &a[..31]));
        assert_eq!(without_token("token=abc&x=1"), "x=1");
        assert_eq!(without_token("token=abc"), "");
    }

    #[test]
    fn loopback_binds_need_no_token_but_their_own_host() {
        let local = Access::for_addr("127.0.0.1:8080".parse().unwrap());
        assert!(local.token().is_none());
        let mut headers = HeaderMap::new();
        assert!(!local.host_ok(&headers), "no Host");
        for ok in [
            "localhost:8080",
            "127.0.0.1:9000",
            "[::1]:8080",
            "LOCALHOST",
            "127.0.0.2:1",
        ] {
            headers.insert(header::HOST, HeaderValue::from_static(ok));
            assert!(local.host_ok(&headers), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.nip.io:8080",
        ] {
            headers.insert(header::HOST, HeaderValue::from_static(bad));
            assert!(!local.host_ok(&headers), "{bad}");
        }
        let open = Access::for_addr("0.0.0.0:8080".parse().unwrap());
        assert!(open.token().is_some());
        assert!(open.host_ok(&headers));
    }
}

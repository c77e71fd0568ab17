//! Response compression of a real `switchyard up`: a client that accepts brotli or gzip gets
//! compressed bytes that decode to exactly the page (console pages, static assets, REST JSON);
//! a client that says nothing, or only encodings we do not offer, gets the identity encoding.

mod browser;

use std::io::Read;

use browser::{OWNER_EMAIL, Up};
use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING, COOKIE, SET_COOKIE, VARY};

/// `name=value` of the `Set-Cookie` named `name` in `response`.
fn cookie_of(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
        .find(|pair| pair.starts_with(&format!("{name}=")) && pair.len() > name.len() + 1)
}

/// The value of the hidden `csrf` field of a form in `html`.
fn csrf_field(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    html[at..]
        .split('"')
        .next()
        .expect("csrf value")
        .to_string()
}

/// `html` with the value of its `csrf` field blanked: the login form gets a new token on each
/// visit without a cookie.
fn without_csrf(html: &str) -> String {
    match html.find("name=\"csrf\" value=\"") {
        Some(at) => {
            let start = at + 19;
            let end = start + html[start..].find('"').unwrap_or(0);
            format!("{}{}", &html[..start], &html[end..])
        }
        None => html.to_string(),
    }
}

/// Signs the owner in through the console's login form; answers the session cookie.
async fn sign_in(up: &Up) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let form = http.get(up.url("/login")).send().await.expect("login page");
    let login_cookie = cookie_of(&form, "sy_login").expect("login cookie");
    let csrf = csrf_field(&form.text().await.expect("login html"));
    let answer = http
        .post(up.url("/login"))
        .header(COOKIE, login_cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("account", "default"),
            ("email", OWNER_EMAIL),
            ("password", up.password.as_str()),
            ("next", "/gateways"),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(answer.status(), 303, "login answers a redirect");
    cookie_of(&answer, "sy_session").expect("session cookie")
}

/// GET `path` with `accept` (none: no `Accept-Encoding`); answers the `Content-Encoding`
/// (empty for identity), whether `Vary` names `Accept-Encoding`, and the decoded body.
async fn get(
    up: &Up,
    path: &str,
    accept: Option<&str>,
    cookie: Option<&str>,
    token: Option<&str>,
) -> (String, bool, Vec<u8>) {
    let mut request = up.http.get(up.url(path));
    if let Some(accept) = accept {
        request = request.header(ACCEPT_ENCODING, accept);
    }
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    assert_eq!(response.status(), 200, "GET {path}");
    let encoding = response
        .headers()
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().expect("ascii").to_string())
        .unwrap_or_default();
    let vary = response.headers().get_all(VARY).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.to_ascii_lowercase().contains("accept-encoding"))
    });
    let raw = response.bytes().await.expect("body").to_vec();
    let decoded = match encoding.as_str() {
        "" => raw,
        "gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(raw.as_slice())
                .read_to_end(&mut out)
                .expect("valid gzip");
            out
        }
        "br" => {
            let mut out = Vec::new();
            brotli::Decompressor::new(raw.as_slice(), 4096)
                .read_to_end(&mut out)
                .expect("valid brotli");
            out
        }
        other => panic!("unexpected Content-Encoding {other} for {path}"),
    };
    (encoding, vary, decoded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_assets_and_json_are_compressed_when_accepted_and_identity_otherwise() {
    let up = Up::start();
    let (status, body) = up
        .rest(
            reqwest::Method::POST,
            "/api/v1/gateways",
            Some(serde_json::json!({ "name": "compressed-gateway" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let session = sign_in(&up).await;
    let owner = up.token.clone();
    // (path, cookie, token, text the decoded body must contain)
    let cases: [(&str, Option<&str>, Option<&str>, &str); 4] = [
        ("/gateways", Some(&session), None, "compressed-gateway"),
        ("/login", None, None, "Sign in"),
        ("/assets/console.css", None, None, "{"),
        ("/api/v1/gateways", None, Some(&owner), "compressed-gateway"),
    ];
    for (path, cookie, token, needle) in cases {
        let (plain_encoding, _, plain) = get(&up, path, None, cookie, token).await;
        assert_eq!(
            plain_encoding, "",
            "{path} without Accept-Encoding is identity"
        );
        let plain_text = String::from_utf8(plain.clone()).expect("utf-8");
        assert!(plain_text.contains(needle), "{path}: {plain_text:.200}");
        for (accept, expected) in [("br", "br"), ("gzip", "gzip"), ("gzip, deflate, br", "br")] {
            let (encoding, vary, decoded) = get(&up, path, Some(accept), cookie, token).await;
            assert_eq!(encoding, expected, "{path} with Accept-Encoding: {accept}");
            assert!(vary, "{path}: Vary names Accept-Encoding");
            if path == "/gateways" {
                // The page shows relative times and a per-session token: compare its
                // stable part (the table) rather than every byte.
                let decoded = String::from_utf8(decoded).expect("utf-8");
                assert!(decoded.contains(needle), "{path} decoded: {decoded:.200}");
                assert!(decoded.contains("</html>"), "{path}: the whole page");
            } else {
                let decoded = String::from_utf8(decoded).expect("utf-8");
                assert_eq!(
                    without_csrf(&decoded),
                    without_csrf(&plain_text),
                    "{path} with {accept} decodes to the page"
                );
            }
        }
        // Asked for something we do not offer: identity.
        let (encoding, _, _) = get(&up, path, Some("zstd"), cookie, token).await;
        assert_eq!(encoding, "", "{path} with only zstd accepted");
    }
}

//! `catalog-bench --load-client`, the process that sends the realistic
//! benchmark's concurrent requests: every request is answered and timed,
//! and an answer other than 200 fails the load.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A keep-alive HTTP/1.1 server answering GET `/ok/...` with 200 and
/// anything else with 404; counts the requests it answered.
fn serve() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut writer = conn;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let mut length = 0usize;
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 {
                            return;
                        }
                        if header.trim().is_empty() {
                            break;
                        }
                        if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:")
                        {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    seen.fetch_add(1, Ordering::SeqCst);
                    let (status, text) = if path.starts_with("/ok/") {
                        ("200 OK", format!("{{\"path\":\"{path}\"}}"))
                    } else {
                        ("404 Not Found", "{\"error\":\"no\"}".to_owned())
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
                        text.len()
                    );
                    if writer.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (base, count)
}

/// Runs the load process on `load`; returns its exit success and stdout.
fn load(load: &serde_json::Value) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_catalog-bench"))
        .arg("--load-client")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(load.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn every_request_is_answered_and_timed() {
    let (base, count) = serve();
    let urls: Vec<String> = (0..5).map(|i| format!("{base}/ok/{i}")).collect();
    let (ok, out) = load(&serde_json::json!({"urls": urls, "requests": 100, "body": null}));
    assert!(ok, "the load failed: {out}");
    let last = out.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
    let m: serde_json::Value = serde_json::from_str(last).unwrap();
    let nanos = m["nanos"].as_array().unwrap();
    // 100 requests over 16 connections: 7 each.
    assert_eq!(nanos.len(), 112);
    assert_eq!(count.load(Ordering::SeqCst), 112);
    let nanos: Vec<u64> = nanos.iter().map(|n| n.as_u64().unwrap()).collect();
    assert!(
        nanos.windows(2).all(|w| w[0] <= w[1]),
        "latencies are sorted"
    );
    assert!(nanos[0] > 0);
    assert!(m["rate"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_post_carries_its_body_and_an_error_answer_fails_the_load() {
    let (base, _) = serve();
    let (ok, out) = load(&serde_json::json!({
        "urls": [format!("{base}/ok/post")],
        "requests": 16,
        "body": "{\"query\":{}}",
    }));
    assert!(ok, "the POST load failed: {out}");
    let (ok, out) = load(&serde_json::json!({
        "urls": [format!("{base}/ok/1"), format!("{base}/missing")],
        "requests": 32,
        "body": null,
    }));
    assert!(!ok, "a 404 must fail the load: {out}");
}

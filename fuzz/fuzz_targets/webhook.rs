//! GitHub webhook deliveries: any event name and body parse or fail with
//! an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

const EVENTS: [&str; 8] = [
    "ping",
    "push",
    "repository",
    "team",
    "membership",
    "organization",
    "installation",
    "pull_request",
];

fuzz_target!(|input: (u8, &[u8])| {
    let (which, body) = input;
    let event = EVENTS[usize::from(which) % EVENTS.len()];
    let _ = ingest::github::webhook::parse(event, body);
});

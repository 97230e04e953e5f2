//! GitHub REST answers (contents, languages, branch protection, alerts,
//! teams, repositories, members, users): any body decodes or fails with an
//! error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, &[u8])| {
    let (which, body) = input;
    let answers = ingest::github::ANSWERS;
    let answer = answers[usize::from(which) % answers.len()];
    let _ = ingest::github::decode_answer(answer, body);
});

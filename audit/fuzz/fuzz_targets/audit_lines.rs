//! Arbitrary bytes as a syslog file: through `verify`, `show` (text and JSON, with and
//! without a filter) and the record parser on each line. Any panic is a bug: these
//! readers take files any local user can write into through syslog. Outputs must be
//! plain ASCII (nothing from the file reaches the admin's terminal raw).
#![no_main]

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use vigil_audit::sample::sample_key;
use vigil_audit::timeline::{Filter, show_readers};
use vigil_audit::verify::verify_readers_limited;

fn printable(text: &str) -> bool {
    text.bytes().all(|b| b == b'\n' || (0x20..=0x7e).contains(&b))
}

fuzz_target!(|data: &[u8]| {
    // The seed corpus is sealed with this key: the fuzzer starts from authentic chains.
    let keys = [sample_key(1)];
    // A small work budget keeps each run fast; the budget logic itself is exercised.
    let Ok(report) = verify_readers_limited(vec![(PathBuf::from("input"), data)], &keys, 1 << 12) else {
        panic!("reading a byte slice cannot fail");
    };
    for strict in [false, true] {
        let text = report.render_with(strict);
        assert!(printable(&text), "non-printable report: {text:?}");
        assert_eq!(report.passes(strict), report.is_clean() && (!strict || report.unauthenticated().count() == 0));
    }
    let now = UNIX_EPOCH + Duration::from_secs(1_795_666_450 + 86_400);
    let filters = [Filter::default(), Filter { user: Some("alice".into()), session: Some(1), ..Filter::default() }];
    for json in [false, true] {
        for filter in &filters {
            let Ok(shown) = show_readers(vec![(PathBuf::from("input"), data)], filter, json, now) else {
                panic!("reading a byte slice cannot fail");
            };
            assert!(printable(&shown), "non-printable timeline: {shown:?}");
        }
    }
    for line in String::from_utf8_lossy(data).lines() {
        let _ = vigil_protocol::audit::parse_kv_line(line);
    }
});

//! The replay events file on arbitrary text: never panics; an invalid file names
//! FILE:LINE:COL inside the text; a valid one's events are in time order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match flowgate_driver::events::parse_str(text, "fuzz-events.toml", Path::new("/nonexistent")) {
        Ok(events) => {
            assert!(
                events.windows(2).all(|w| w[0].at <= w[1].at),
                "events out of order"
            );
        }
        Err(flowgate_driver::events::EventsError::Invalid { at, reason }) => {
            assert_eq!(at.origin, "fuzz-events.toml");
            let lines = text.split('\n').count().max(1);
            assert!(
                at.line >= 1 && at.line <= lines,
                "line {} of {lines}: {reason}",
                at.line
            );
            assert!(at.column >= 1);
        }
        Err(e) => panic!("reading from text cannot fail to read: {e}"),
    }
});

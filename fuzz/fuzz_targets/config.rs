//! The TOML config on arbitrary text: never panics; a valid config round-trips (re-serialised through `toml`, it parses to the same config); an invalid
//! one names FILE:LINE:COL inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match flowgate_driver::parse_str(text, "fuzz.toml") {
        Ok(config) => {
            let value: toml::Table = toml::from_str(text).expect("a valid config is TOML");
            let again = toml::to_string(&value).expect("TOML serialises");
            let reparsed = flowgate_driver::parse_str(&again, "again.toml")
                .unwrap_or_else(|e| panic!("round trip refused: {e}\n{again}"));
            assert_eq!(reparsed, config, "round trip changed the config");
        }
        Err(e) => {
            let at = e.location().expect("a text error has a location");
            assert_eq!(at.origin, "fuzz.toml");
            let lines = text.split('\n').count().max(1);
            assert!(
                at.line >= 1 && at.line <= lines,
                "line {} of {lines}: {e}",
                at.line
            );
            assert!(at.column >= 1, "{e}");
            assert!(e
                .to_string()
                .starts_with(&format!("fuzz.toml:{}:{}: ", at.line, at.column)));
        }
    }
});

//! pcap/pcapng reading (host-fallback's pcap_io) on arbitrary bytes, in bursts as replay
//! reads: never panics, and an error that names a record names one that starts inside the
//! input, with as many frames before it as were handed out. (One pass per input: each
//! reader allocates pcap-file's 8 MB buffer, which is most of an execution's time.)
#![no_main]

use flowgate_host::pcap_io::{PcapError, PcapSource};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(mut source) = PcapSource::from_reader(data, Path::new("fuzz.pcap")) else {
        return;
    };
    let mut frames = Vec::new();
    let result = loop {
        match source.read_burst(3, &mut frames) {
            Ok(0) => break Ok(()),
            Ok(_) => {}
            Err(e) => break Err(e),
        }
    };
    let read: usize = frames.iter().map(|f| 16 + f.data.len()).sum();
    assert!(
        read <= data.len(),
        "{read} bytes of frames from {} bytes",
        data.len()
    );
    if let Err(PcapError::Record {
        offset,
        frames_before,
        ..
    }) = result
    {
        assert!(offset < data.len() as u64, "offset {offset} past the input");
        assert_eq!(frames_before, frames.len() as u64);
    }
    assert_eq!(source.frames_read(), frames.len() as u64);
});

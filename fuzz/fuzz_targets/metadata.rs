//! The reward dataset's `{split}_metadata.txt` parser: any text gives a value or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nanoreward::reward::dataset::Metadata;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(m) = Metadata::parse(text, std::path::Path::new("fuzz_metadata.txt"))
    {
        // What parses must print and parse back to the same value.
        let again = Metadata::parse(&m.to_text(), std::path::Path::new("again"))
            .expect("printed metadata parses");
        assert_eq!(again.to_text(), m.to_text());
    }
});

//! Every checked-in corpus file of the `signaling_message` fuzz target
//! (`fuzz/corpus/signaling_message/`) through its entry point, on stable
//! Rust: a crash found by fuzzing stays fixed once its input is added.

use std::path::PathBuf;

#[test]
fn signaling_message_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/signaling_message");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("the corpus directory exists") {
        let path = entry.expect("a readable directory").path();
        let data = std::fs::read(&path).expect("a readable corpus file");
        let result = std::panic::catch_unwind(|| {
            signaling::protocol::fuzzing::client_message(&data);
        });
        assert!(result.is_ok(), "{} panicked", path.display());
        n += 1;
    }
    assert!(n > 0, "no corpus files");
    println!("signaling_message: {n} inputs");
}

//! The README's no-install demo (examples/demo/run.sh) works as documented.

use std::process::Command;

#[test]
fn the_demo_hot_restarts_twice_and_stops_cleanly() {
    let out = Command::new("examples/demo/run.sh")
        .arg(crate::support::BIN)
        .output()
        .expect("cannot run examples/demo/run.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for epoch in 0..=2 {
        assert!(text.contains(&format!(
            "forking and execing new child process at epoch {epoch}"
        )));
        assert!(text.contains(&format!("demo epoch {epoch}: serving")));
    }
    assert_eq!(text.matches("exited with code=0").count(), 2, "{text}");
    assert!(text.contains("demo epoch 2: reopening logs"), "{text}");
    assert!(text.contains("all children exited cleanly"), "{text}");
    assert!(
        text.ends_with("hot-restarter exited with code 0\n"),
        "{text}"
    );
}

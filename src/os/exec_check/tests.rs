//! Unit tests of the parent module.

use super::*;

fn file(body: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, path)
}

/// `explain_exec_error` for `path` and `errno` ends with `ending`; the text.
#[track_caller]
fn explained(path: &std::path::Path, errno: i32, ending: &str) -> String {
    let text = explain_exec_error(path, &io::Error::from_raw_os_error(errno));
    assert!(text.ends_with(ending), "{text}");
    text
}

#[test]
fn exec_errors_are_explained() {
    let (dir, script) = file(b"#!/no/such/shell -e\n");
    let interpreter = "(its interpreter /no/such/shell cannot be found)";
    explained(&script, libc::ENOENT, interpreter);
    explained(dir.path(), libc::EACCES, "(it is a directory)");
    let missing = dir.path().join("missing");
    explained(
        &missing,
        libc::ENOENT,
        "No such file or directory (os error 2)",
    );
}

#[test]
fn a_crlf_shebang_is_not_called_a_missing_interpreter() {
    // execve looks for "/bin/sh\r" and fails with ENOENT.
    let (_dir, script) = file(b"#!/bin/sh\r\necho hi\r\n");
    let text = explained(
        &script,
        libc::ENOENT,
        "No such file or directory (os error 2) (its #! line ends in a carriage \
         return: the file has CRLF (DOS) line endings)",
    );
    assert!(!text.contains("cannot be found"), "{text}");
}

#[test]
fn a_file_without_a_shebang_is_explained_after_enoexec() {
    let (_dir, script) = file(b"echo hi\n");
    let no_shebang = "(it has no #! line and is not an ELF binary)";
    explained(&script, libc::ENOEXEC, no_shebang);
}

#[test]
fn exec_problem_reads_the_first_line_as_the_kernel_does() {
    let cases: [(&[u8], Option<&str>); 11] = [
        (b"#!/bin/sh\nexit 0\n", None),
        (b"#! /bin/sh -e\n", None),
        (b"#!\t/bin/sh\n", None),
        (b"#!/bin/sh", None),
        (
            b"#!/bin/sh\r\n",
            Some("its #! line ends in a carriage return: the file has CRLF (DOS) line endings"),
        ),
        (
            b"#!/bin/sh -e\r\n",
            Some("its #! line ends in a carriage return: the file has CRLF (DOS) line endings"),
        ),
        (
            b"#!/no/such/sh\n",
            Some("its interpreter /no/such/sh cannot be found"),
        ),
        (b"#!\n", Some("its #! line names no interpreter")),
        (
            b"#!/tmp\n",
            Some("its interpreter /tmp is not a regular file"),
        ),
        (
            b"echo hi\n",
            Some("it has no #! line and is not an ELF binary"),
        ),
        (b"", Some("it is empty: a script needs a #! line")),
    ];
    for (body, expected) in cases {
        let (_dir, path) = file(body);
        assert_eq!(
            exec_problem(&path).as_deref(),
            expected,
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    let this = std::env::current_exe().unwrap();
    assert_eq!(exec_problem(&this), None, "an ELF binary");
}

#[test]
fn an_interpreter_that_is_not_executable_is_named() {
    let (dir, interp) = file(b"#!/bin/sh\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&interp, std::fs::Permissions::from_mode(0o644)).unwrap();
    let script = dir.path().join("t");
    std::fs::write(&script, format!("#!{}\n", interp.display())).unwrap();
    // Root may execute any file with an execute bit, not one without.
    assert_eq!(
        exec_problem(&script),
        Some(format!(
            "its interpreter {} is not executable",
            interp.display()
        ))
    );
}

#[test]
fn binfmt_misc_entries_can_claim_a_file_without_a_shebang() {
    let binfmt = tempfile::tempdir().unwrap();
    let (_dir, path) = file(b"PK\x03\x04 a jar");
    let status = binfmt.path().join("status");
    std::fs::write(&status, "enabled\n").unwrap();
    std::fs::write(binfmt.path().join("register"), "").unwrap();
    assert!(exec_problem_with(&path, binfmt.path()).is_some());
    std::fs::write(
        binfmt.path().join("jar"),
        "enabled\ninterpreter /usr/bin/jexec\nflags: \noffset 0\nmagic 504b0304\n",
    )
    .unwrap();
    assert_eq!(exec_problem_with(&path, binfmt.path()), None);
    // A mask, and an entry that does not match.
    std::fs::write(
        binfmt.path().join("jar"),
        "enabled\ninterpreter /x\nflags: \noffset 1\nmagic 4b00\nmask ff00\n",
    )
    .unwrap();
    assert_eq!(exec_problem_with(&path, binfmt.path()), None);
    std::fs::write(
        binfmt.path().join("jar"),
        "enabled\ninterpreter /x\nflags: \noffset 0\nmagic 7f454c46\n",
    )
    .unwrap();
    assert!(exec_problem_with(&path, binfmt.path()).is_some());
    // By extension; disabled entries and a disabled binfmt_misc do not count.
    std::fs::write(
        binfmt.path().join("jar"),
        "enabled\ninterpreter /x\nflags: \nextension .jar\n",
    )
    .unwrap();
    assert!(exec_problem_with(&path, binfmt.path()).is_some());
    let jar = path.with_extension("jar");
    std::fs::copy(&path, &jar).unwrap();
    assert_eq!(exec_problem_with(&jar, binfmt.path()), None);
    std::fs::write(&status, "disabled\n").unwrap();
    assert!(exec_problem_with(&jar, binfmt.path()).is_some());
}

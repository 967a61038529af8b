//! The man pages and completions: the checked-in files are what
//! `examples/gen-docs` generates, the pages document everything `--help`
//! shows, and bash completes `hot-restarter-ctl <TAB>`.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use crate::assertions::assert_all_among;
use crate::pages;
use crate::tools::{BIN, CTL, root, run, text};

#[test]
fn checked_in_man_pages_and_completions_are_what_the_generator_writes() {
    let mut stale = Vec::new();
    for file in pages::all() {
        let checked_in = std::fs::read(root().join(&file.path)).unwrap_or_default();
        if checked_in != file.text {
            stale.push(file.path);
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from the clap definitions: run `cargo run --example gen-docs` and commit"
    );
}

/// The text of a man page's roff source, with the escapes this generator
/// uses undone and whitespace squeezed, for substring checks.
fn page_text(name: &str) -> String {
    let roff = std::fs::read_to_string(root().join(format!("docs/man/{name}.1"))).unwrap();
    let plain = roff
        .replace("\\-", "-")
        .replace("\\*(Aq", "'")
        .replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "")
        .replace("\\(bu", "");
    plain.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One section of a page's text, from `.SH HEADING` to the next `.SH`.
fn section(page: &str, heading: &str) -> String {
    // roff quotes a heading with a space in it.
    let start = page
        .find(&format!(".SH {heading} "))
        .or_else(|| page.find(&format!(".SH \"{heading}\"")))
        .unwrap_or_else(|| panic!("no {heading} section"));
    let rest = &page[start + 4..];
    rest[..rest.find(".SH ").unwrap_or(rest.len())].to_string()
}

fn help(bin: &str, args: &[&str]) -> String {
    let out = run(
        Command::new(bin).args(args).arg("--help"),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// Words of `text` that look like flags, environment variables, signals
/// and defaults.
pub(crate) fn documented_words(text: &str) -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')) {
        let flag = word.starts_with("--") && word.len() > 2;
        let short = word.len() == 2 && word.starts_with('-');
        let env = word.starts_with("HOT_RESTARTER_") || word == "RESTART_EPOCH";
        let signal = word.starts_with("SIG") && word.len() > 4;
        if flag || short || env || signal {
            words.insert(word.trim_end_matches('-').to_string());
        }
    }
    for default in text.split("[default: ").skip(1) {
        words.insert(format!(
            "[default: {}]",
            &default[..default.find(']').unwrap()]
        ));
    }
    words
}

#[test]
fn the_wrapper_page_documents_every_flag_variable_default_signal_and_exit_code() {
    let page = page_text("hot-restarter");
    let help = help(BIN, &[]);
    let words = documented_words(&help);
    for needed in [
        "--term-wait",
        "HOT_RESTARTER_SUBREAPER",
        "SIGHUP",
        "[default: 30]",
    ] {
        assert!(
            words.contains(needed),
            "{needed} not found in --help: {words:?}"
        );
    }
    let missing: Vec<_> = words.iter().filter(|w| !page.contains(*w)).collect();
    assert!(
        missing.is_empty(),
        "in --help, not in hot-restarter.1: {missing:?}"
    );

    let signals = section(&page, "SIGNALS");
    for signal in ["SIGHUP", "SIGUSR1", "SIGTERM", "SIGINT", "SIGUSR2"] {
        assert!(
            signals.contains(signal),
            "{signal} missing from SIGNALS: {signals}"
        );
    }
    let codes = section(&page, "EXIT STATUS");
    let after_help = &help[help.find("Exit codes:").expect("exit codes in --help")..];
    for code in ["0", "1", "2"] {
        assert!(after_help.contains(&format!("{code} ")), "{after_help}");
        assert!(
            codes.contains(&format!(".TP {code} ")),
            "exit code {code}: {codes}"
        );
    }
    let environment = section(&page, "ENVIRONMENT");
    for word in words.iter().filter(|w| w.starts_with("HOT_RESTARTER_")) {
        assert!(
            environment.contains(word.as_str()),
            "{word} missing from ENVIRONMENT"
        );
    }
}

#[test]
fn the_ctl_page_documents_every_command_with_its_flags() {
    let page = page_text("hot-restarter-ctl");
    let top = help(CTL, &[]);
    let commands: Vec<String> = top[top.find("Commands:").unwrap()..top.find("Options:").unwrap()]
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() >= 6, "{commands:?}");
    let mut missing = Vec::new();
    let global = documented_words(&top);
    for word in &global {
        if !page.contains(word.as_str()) {
            missing.push(format!("{word} (top level)"));
        }
    }
    let listed = section(&page, "COMMANDS");
    for command in &commands {
        let heading = format!(".SS \"hot-restarter-ctl {command}\"");
        let Some(start) = listed.find(&heading) else {
            missing.push(heading);
            continue;
        };
        let body = &listed[start..];
        let body = &body[..body[4..].find(".SS ").map_or(body.len(), |e| e + 4)];
        for word in documented_words(&help(CTL, &[command])) {
            // The global --socket is documented once, at the top.
            if !body.contains(&word) && !global.contains(&word) {
                missing.push(format!("{word} ({command})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "in --help, not in hot-restarter-ctl.1: {missing:?}"
    );
    let codes = section(&page, "EXIT STATUS");
    for code in 0..=3 {
        assert!(top.contains(&format!("{code} ")), "{top}");
        assert!(
            codes.contains(&format!(".TP {code} ")),
            "exit code {code}: {codes}"
        );
    }
}

/// What bash's programmable completion offers for the words of `line`
/// (the last one being completed), from the checked-in script.
fn bash_completes(script: &str, line: &[&str]) -> Vec<String> {
    let program = bash_program(&root().join(script).display().to_string(), line);
    let out = run(
        Command::new("bash").args(["--norc", "-c", &program]),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A bash program that sources the completion `script` (a path), runs the
/// function it registers for `line[0]` on the words of `line` as bash
/// would on <TAB>, and prints what it offers, one a line.
pub(crate) fn bash_program(script: &str, line: &[&str]) -> String {
    let words: Vec<String> = line.iter().map(|w| format!("'{w}'")).collect();
    format!(
        "source '{script}'\n\
         f=$(complete -p {cmd} | sed 's/.* -F \\([^ ]*\\) .*/\\1/')\n\
         COMP_WORDS=({words})\n\
         COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))\n\
         COMP_LINE=\"${{COMP_WORDS[*]}}\"\n\
         COMP_POINT=${{#COMP_LINE}}\n\
         \"$f\" {cmd} \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        cmd = line[0],
        words = words.join(" "),
    )
}

#[test]
fn bash_completes_commands_and_their_flags() {
    let ctl = "docs/completions/hot-restarter-ctl.bash";
    let offered = bash_completes(ctl, &["hot-restarter-ctl", ""]);
    assert_all_among(
        &[
            "status",
            "reload",
            "handoff",
            "reopen-logs",
            "reexec",
            "stop",
            "start",
        ],
        &offered,
        format!("{offered:?}"),
    );
    assert_eq!(
        bash_completes(ctl, &["hot-restarter-ctl", "re"]),
        ["reload", "reopen-logs", "reexec"]
    );
    let reload = bash_completes(ctl, &["hot-restarter-ctl", "reload", "--"]);
    for flag in ["--wait", "--timeout", "--socket"] {
        assert!(reload.iter().any(|o| o == flag), "{flag}: {reload:?}");
    }
    assert_eq!(
        bash_completes(ctl, &["hot-restarter-ctl", "status", "--p"]),
        ["--prometheus"]
    );
    let wrapper = bash_completes(
        "docs/completions/hot-restarter.bash",
        &["hot-restarter", "--pre"],
    );
    assert_eq!(wrapper, ["--preflight", "--preflight-timeout"]);
}

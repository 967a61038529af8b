//! The man pages and shell completions of both binaries, generated from
//! their clap definitions (the same ones the binaries parse with), so that
//! they cannot drift from `--help`. Used by `examples/gen-docs/main.rs`,
//! which writes them under `docs/`, and by `tests/package.rs`, which fails
//! when the checked-in files differ from what this generates.
#![allow(dead_code)]

use clap::CommandFactory;
use clap_complete::Shell;
use roff::{Roff, bold, italic, roman};

/// One generated file: its path under the repository and its contents.
pub struct Generated {
    pub path: String,
    pub text: Vec<u8>,
}

/// Every generated file: two man pages and three completions per binary.
pub fn all() -> Vec<Generated> {
    let mut out = vec![
        Generated {
            path: "docs/man/hot-restarter.1".into(),
            text: wrapper_page(),
        },
        Generated {
            path: "docs/man/hot-restarter-ctl.1".into(),
            text: ctl_page(),
        },
    ];
    for (name, cmd) in [("hot-restarter", wrapper()), ("hot-restarter-ctl", ctl())] {
        for (shell, file) in [
            (Shell::Bash, format!("{name}.bash")),
            (Shell::Zsh, format!("_{name}")),
            (Shell::Fish, format!("{name}.fish")),
        ] {
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), name, &mut text);
            if shell == Shell::Bash {
                text = fix_bash_states(name, text);
            }
            out.push(Generated {
                path: format!("docs/completions/{file}"),
                text,
            });
        }
    }
    out
}

pub fn wrapper() -> clap::Command {
    hot_restarter::config::Flags::command()
}

pub fn ctl() -> clap::Command {
    hot_restarter::control::ctl_cli::Cli::command()
}

/// `.TH` line: no date, so that the pages only change with the flags or
/// the version.
fn man(cmd: clap::Command) -> clap_mangen::Man {
    let version = cmd.get_version().unwrap_or_default().to_string();
    clap_mangen::Man::new(cmd)
        .date("")
        .source(format!("hot-restarter {version}"))
        .manual("User Commands")
}

/// The title, NAME, SYNOPSIS and DESCRIPTION, as clap_mangen renders them.
fn head(page: &clap_mangen::Man) -> Vec<u8> {
    let mut out = Vec::new();
    page.render_title(&mut out).unwrap();
    page.render_name_section(&mut out).unwrap();
    page.render_synopsis_section(&mut out).unwrap();
    page.render_description_section(&mut out).unwrap();
    out
}

fn wrapper_page() -> Vec<u8> {
    let cmd = wrapper();
    let page = man(cmd.clone());
    let mut out = head(&page);
    let mut extra = Roff::new();
    paragraphs(
        &mut extra,
        &[
            "START_SCRIPT is started once per restart epoch, with RESTART_EPOCH \
             set to the epoch (0 first, one more for every hot restart); it should \
             exec Envoy with --restart-epoch $RESTART_EPOCH. The wrapper forwards \
             the signals below, reaps every child and, when a child fails, kills \
             the others and exits, as Envoy's restarter/hot-restarter.py does.",
            "Every option can also be given as the environment variable it names \
             (an empty variable counts as unset; booleans take true or false), so \
             that a supervisor can configure the wrapper through its environment \
             alone, e.g. systemd's EnvironmentFile=.",
        ],
    );
    out.extend(extra.render().into_bytes());
    page.render_options_section(&mut out).unwrap();
    // Each option's variable, listed again under ENVIRONMENT with its flag.
    let variables: Vec<(String, String)> = cmd
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_string_lossy().into_owned();
            Some((env, format!("As --{}.", arg.get_long()?)))
        })
        .collect();
    let mut environment: Vec<(&str, &str)> = variables
        .iter()
        .map(|(env, flag)| (env.as_str(), flag.as_str()))
        .collect();
    environment.extend(ENVIRONMENT);
    out.extend(sections_roff(&[
        (
            "SIGNALS",
            &[
                (
                    "SIGHUP",
                    "Start the next epoch (a hot restart); older epochs are not touched.",
                ),
                (
                    "SIGUSR1",
                    "Sent on to every live child (Envoy reopens its logs).",
                ),
                (
                    "SIGTERM, SIGINT",
                    "Graceful stop: SIGTERM to every child, wait up to --term-wait, then \
                     SIGKILL whatever is left, and exit once every child is reaped.",
                ),
                (
                    "SIGUSR2",
                    "With --handoff-admin only: hand off to a new Envoy generation beside \
                     the serving one. Without it SIGUSR2 keeps its default action, as with \
                     the Python wrapper.",
                ),
            ],
        ),
        (
            "EXIT STATUS",
            &[
                ("0", "Clean shutdown, or every child exited 0 by itself."),
                (
                    "1",
                    "A child failed, a start failed, children had to be killed at shutdown, \
                     or a start-up error (pid file, control socket, signals).",
                ),
                (
                    "2",
                    "Usage error: an unknown flag, a bad value, no START_SCRIPT, an unusable \
                     --preflight or --ready-check script.",
                ),
            ],
        ),
        ("ENVIRONMENT", &environment),
        (
            "SEE ALSO",
            &[(
                "hot-restarter-ctl(1)",
                "Reload, hand off, stop or ask the status of a running wrapper over its \
                 --control-socket.",
            )],
        ),
    ]));
    page.render_version_section(&mut out).unwrap();
    out
}

/// What the wrapper reads or sets besides its options' variables.
const ENVIRONMENT: [(&str, &str); 3] = [
    (
        "NOTIFY_SOCKET",
        "When set (systemd Type=notify), the wrapper sends READY=1 once the first \
                     epoch runs, RELOADING=1 and READY=1 around every restart, STOPPING=1 at \
                     shutdown and a STATUS= line. It is not passed on to the children.",
    ),
    (
        "RUST_LOG",
        "The log level: warn, info (the default) or debug.",
    ),
    (
        "RESTART_EPOCH",
        "Set by the wrapper for START_SCRIPT, the preflight and the ready check: \
                     the epoch they are about. With --handoff-admin, HOT_RESTARTER_SLOT and \
                     HOT_RESTARTER_ENVOY_ADMIN are set for them too.",
    ),
];

fn ctl_page() -> Vec<u8> {
    let cmd = ctl();
    let page = man(cmd.clone());
    let mut out = head(&page);
    page.render_options_section(&mut out).unwrap();
    // One subsection per command with its own synopsis and options (clap's
    // SUBCOMMANDS section would point at one page per command instead).
    let mut commands = Roff::new();
    commands.control("SH", ["COMMANDS"]);
    out.extend(commands.render().into_bytes());
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("hot-restarter-ctl {}", sub.get_name());
        let mut head = Roff::new();
        head.control("SS", [name.as_str()]);
        if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
            head.text([roman(about.to_string())]);
        }
        out.extend(head.render().into_bytes());
        let sub_page = clap_mangen::Man::new(sub.clone().bin_name(&name));
        let mut body = Vec::new();
        sub_page.render_synopsis_section(&mut body).unwrap();
        sub_page.render_options_section(&mut body).unwrap();
        // Their headings become plain paragraphs inside the subsection.
        let body = String::from_utf8(body).unwrap();
        out.extend(
            body.replace(".SH SYNOPSIS\n", ".PP\n")
                .replace(".SH OPTIONS\n", ".PP\n")
                .into_bytes(),
        );
    }
    out.extend(sections_roff(&[
        (
            "EXIT STATUS",
            &[
                ("0", "Done."),
                (
                    "1",
                    "The operation failed (the reason is on stderr), or timed out.",
                ),
                ("2", "Usage error."),
                (
                    "3",
                    "The wrapper is not running: nothing answers on the socket.",
                ),
            ],
        ),
        (
            "SIGNALS",
            &[
                ("reload", "Does what SIGHUP to the wrapper does."),
                ("handoff", "Does what SIGUSR2 to the wrapper does."),
                ("reopen-logs", "Does what SIGUSR1 to the wrapper does."),
                ("stop", "Does what SIGTERM to the wrapper does."),
            ],
        ),
        (
            "ENVIRONMENT",
            &[
                (
                    "HOT_RESTARTER_CONTROL_SOCKET",
                    "The socket, when --socket is not given.",
                ),
                (
                    "HOT_RESTARTER_BIN",
                    "The wrapper that start runs; else hot-restarter beside this \
                     executable, else hot-restarter on PATH.",
                ),
            ],
        ),
        ("SEE ALSO", &[("hot-restarter(1)", "The wrapper.")]),
    ]));
    page.render_version_section(&mut out).unwrap();
    out
}

fn paragraphs(roff: &mut Roff, texts: &[&str]) {
    for text in texts {
        roff.control("PP", []);
        roff.text([roman(squeeze(text))]);
    }
}

/// Sections of tagged paragraphs: (heading, [(tag, text)]).
fn sections_roff(sections: &[(&str, &[(&str, &str)])]) -> Vec<u8> {
    let mut roff = Roff::new();
    for (heading, items) in sections {
        roff.control("SH", [*heading]);
        for (tag, text) in *items {
            roff.control("TP", []);
            if tag.contains('(') {
                roff.text([italic(*tag)]);
            } else {
                roff.text([bold(*tag)]);
            }
            roff.text([roman(squeeze(text))]);
        }
    }
    roff.render().into_bytes()
}

/// One space between words: the texts above are wrapped in the source.
fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// clap_complete's bash script names the state of a subcommand one way in
/// the loop that finds it (`hot__restarter__ctl__subcmd__reload`) and
/// another in the `case` that completes it
/// (`hot__subcmd__restarter__subcmd__ctl__subcmd__reload`) when the binary's
/// name has a hyphen, so nothing after a subcommand completes
/// (clap-rs/clap#6421). Spell the labels as the loop does.
fn fix_bash_states(name: &str, text: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8(text).expect("clap_complete writes UTF-8");
    let wrong = name.replace('-', "__subcmd__");
    let right = name.replace('-', "__");
    text.replace(&format!("        {wrong})"), &format!("        {right})"))
        .replace(&format!("        {wrong}__"), &format!("        {right}__"))
        .into_bytes()
}

//! How long a hollow container runs and how it exits, read from what it was asked to run: the
//! most common finite test workloads are `sleep DURATION` (clusterloader2's batch Jobs run the
//! `sleep` image with `args: [5s]`) and shell one-liners such as `sh -c "sleep 5; exit 1"`.

use std::time::Duration;

use k8s_openapi::api::core::v1::Container;

use super::parse_duration;

/// What a container's command and arguments say: how long it runs, and its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finite {
    /// Run time.
    pub run_for: Duration,
    /// Exit code (`exit N`, or the last command's: `false` is 1).
    pub exit_code: i32,
}

/// Commands a finite script may run besides `sleep` and `exit`: they end at once.
const QUICK: [&str; 11] = [
    "true", "false", ":", "echo", "printf", "date", "env", "hostname", "pwd", "id", "uname",
];

/// Reads `container`'s command and args: a `sleep`/`true`/`false` command, the `sleep` image
/// with a duration, or a shell's `-c` script made only of `sleep`, `exit` and commands that end
/// at once. `None` for anything else: an unknown program may run forever.
pub fn finite(container: &Container) -> Option<Finite> {
    let command = container.command.as_deref().unwrap_or_default();
    let args = container.args.as_deref().unwrap_or_default();
    let base = |w: &str| w.rsplit('/').next().unwrap_or_default().to_string();
    // The `sleep` image takes the duration as its only argument.
    let image = container.image.as_deref().unwrap_or_default();
    let image_name = base(image)
        .split([':', '@'])
        .next()
        .unwrap_or_default()
        .to_string();
    if image_name == "sleep"
        && command.is_empty()
        && let [arg] = args
    {
        let d = parse_duration(arg)?;
        return Some(Finite {
            run_for: d,
            exit_code: 0,
        });
    }
    let all: Vec<&str> = command.iter().chain(args).map(String::as_str).collect();
    let script = match all.as_slice() {
        [shell, flag, script, ..] if is_shell(&base(shell)) && *flag == "-c" => script.to_string(),
        [program, ..] if matches!(base(program).as_str(), "sleep" | "true" | "false") => {
            all.join(" ")
        }
        _ => return None,
    };
    script_run(&script)
}

fn is_shell(program: &str) -> bool {
    matches!(program, "sh" | "bash" | "ash" | "dash" | "zsh")
}

/// How long a shell script of known commands runs, and its exit code.
fn script_run(script: &str) -> Option<Finite> {
    let mut run_for = Duration::ZERO;
    let mut status = 0;
    // A background job (`sleep 100 & exit 0`) would need the shell's job semantics.
    let single_amp = script.replace("&&", "").contains('&');
    if single_amp {
        return None;
    }
    let segments = script
        .split(['\n', ';'])
        .flat_map(|s| s.split("&&"))
        .flat_map(|s| s.split("||"))
        .flat_map(|s| s.split('|'));
    for segment in segments {
        let words: Vec<&str> = segment.split_whitespace().collect();
        let Some(first) = words.first() else {
            continue;
        };
        let program = first.rsplit('/').next().unwrap_or_default();
        match program {
            "sleep" => {
                run_for = run_for.saturating_add(parse_duration(words.get(1)?)?);
                status = 0;
            }
            "exit" => {
                let code = match words.get(1) {
                    Some(c) => c.parse().ok()?,
                    None => status,
                };
                return Some(Finite {
                    run_for,
                    exit_code: code,
                });
            }
            "false" => status = 1,
            p if QUICK.contains(&p) => status = 0,
            _ => return None,
        }
    }
    Some(Finite {
        run_for,
        exit_code: status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(image: &str, command: &[&str], args: &[&str]) -> Container {
        let list = |l: &[&str]| (!l.is_empty()).then(|| l.iter().map(|s| s.to_string()).collect());
        Container {
            name: "c".into(),
            image: Some(image.into()),
            command: list(command),
            args: list(args),
            ..Container::default()
        }
    }

    #[test]
    fn sleeps_and_exits_are_read_from_commands_and_the_sleep_image() {
        let f = |image, command: &[&str], args: &[&str]| finite(&container(image, command, args));
        assert_eq!(
            f("gcr.io/k8s-staging-perf-tests/sleep:v0.1.0", &[], &["5s"]),
            Some(Finite {
                run_for: Duration::from_secs(5),
                exit_code: 0
            })
        );
        assert_eq!(
            f("busybox", &["sh", "-c", "exit 0"], &[]),
            Some(Finite {
                run_for: Duration::ZERO,
                exit_code: 0
            })
        );
        assert_eq!(
            f(
                "busybox",
                &["/bin/sh", "-c"],
                &["sleep 2; sleep 1m && exit 3"]
            ),
            Some(Finite {
                run_for: Duration::from_secs(62),
                exit_code: 3
            })
        );
        assert_eq!(
            f("busybox", &["sleep", "10"], &[]),
            Some(Finite {
                run_for: Duration::from_secs(10),
                exit_code: 0
            })
        );
        assert_eq!(f("busybox", &["sleep", "infinity"], &[]), None);
        assert_eq!(
            f(
                "busybox",
                &["sh", "-c", "while true; do sleep 1; done"],
                &[]
            ),
            None
        );
        assert_eq!(
            f(
                "busybox",
                &["sh", "-c", "for i in 1 2; do sleep 1; done"],
                &[]
            ),
            None
        );
        assert_eq!(
            f("busybox", &["sh", "-c", "sleep 5 && echo done"], &[])
                .unwrap()
                .run_for,
            Duration::from_secs(5)
        );
        assert_eq!(f("nginx", &[], &[]), None);
        assert_eq!(f("registry.k8s.io/pause:3.10", &[], &[]), None);
        assert_eq!(f("busybox", &["false"], &[]).unwrap().exit_code, 1);
        // Words of other programs are not commands: these run until deleted.
        assert_eq!(f("app", &["/server"], &["--leader-elect", "false"]), None);
        assert_eq!(
            f(
                "busybox",
                &["sh", "-c", "echo false > /tmp/x && exec server"],
                &[]
            ),
            None
        );
        assert_eq!(
            f("busybox", &["sh", "-c", "sleep 10 && exec ./server"], &[]),
            None
        );
        assert_eq!(
            f(
                "busybox",
                &["sh", "-c", "trap exit TERM; sleep infinity"],
                &[]
            ),
            None
        );
        assert_eq!(f("busybox", &["sh", "-c", "sleep 100 & exit 0"], &[]), None);
        assert_eq!(
            f("busybox", &["sh", "-c", "echo hi; false"], &[])
                .unwrap()
                .exit_code,
            1
        );
    }
}

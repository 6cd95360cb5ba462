//! How long a hollow container runs and how it exits, read from what it was asked to run: the
//! most common finite test workloads are `sleep DURATION` (clusterloader2's batch Jobs run the
//! `sleep` image with `args: [5s]`) and shell one-liners such as `sh -c "sleep 5; exit 1"`.

use std::time::Duration;

use k8s_openapi::api::core::v1::Container;

use super::parse_duration;

/// What a container's command and arguments say: how long it runs, and its exit code when the
/// command says (`exit N`, `true`, `false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finite {
    /// Run time.
    pub run_for: Duration,
    /// Exit code, when the command names one.
    pub exit_code: Option<i32>,
}

/// Reads `container`'s command and args. `None` when nothing in them says the container ends.
pub fn finite(container: &Container) -> Option<Finite> {
    let words: Vec<&str> = container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .flat_map(|a| a.split(|c: char| c.is_whitespace() || c == ';' || c == '&' || c == '|'))
        .filter(|w| !w.is_empty())
        .collect();
    // The `sleep` image takes the duration as its only argument.
    let image = container.image.as_deref().unwrap_or_default();
    let image_name = image
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .split([':', '@'])
        .next()
        .unwrap_or_default();
    if image_name == "sleep"
        && container.command.is_none()
        && let [arg] = container.args.as_deref().unwrap_or_default()
        && let Some(d) = parse_duration(arg)
    {
        return Some(Finite {
            run_for: d,
            exit_code: Some(0),
        });
    }
    let mut run_for = Duration::ZERO;
    let mut finite = false;
    let mut exit_code = None;
    let mut i = 0;
    while i < words.len() {
        let word = words[i].rsplit('/').next().unwrap_or_default();
        let next = words.get(i + 1).copied();
        match word {
            // A loop may sleep forever (`while true; do sleep 1; done`): not read as finite.
            "while" | "until" | "for" | "do" => return None,
            "sleep" => match next.and_then(parse_duration) {
                Some(d) => {
                    run_for = run_for.saturating_add(d);
                    finite = true;
                    i += 1;
                }
                // `sleep infinity` or something we cannot read: it does not end by itself.
                None => return None,
            },
            "exit" => {
                exit_code = Some(next.and_then(|n| n.parse().ok()).unwrap_or(0));
                finite = true;
                break;
            }
            "true" => {
                exit_code = Some(0);
                finite = true;
            }
            "false" => {
                exit_code = Some(1);
                finite = true;
            }
            _ => {}
        }
        i += 1;
    }
    finite.then_some(Finite { run_for, exit_code })
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
                exit_code: Some(0)
            })
        );
        assert_eq!(
            f("busybox", &["sh", "-c", "exit 0"], &[]),
            Some(Finite {
                run_for: Duration::ZERO,
                exit_code: Some(0)
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
                exit_code: Some(3)
            })
        );
        assert_eq!(
            f("busybox", &["sleep", "10"], &[]),
            Some(Finite {
                run_for: Duration::from_secs(10),
                exit_code: None
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
        assert_eq!(f("busybox", &["false"], &[]).unwrap().exit_code, Some(1));
    }
}

//! `/containerLogs/NS/POD/CONTAINER`: the log a hollow container writes (the runtime's start
//! line, the lines of the pod's `kubemark.io/log` annotation, its exit line), with the
//! kubelet's options: `follow`, `tailLines`, `timestamps`, `sinceSeconds`, `sinceTime`,
//! `limitBytes` and `previous`.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};

use super::{Body, NodeServer, text};
use crate::pods::record::{PodRecord, Run};

/// How often a followed log looks for the container's exit.
const FOLLOW_POLL: Duration = Duration::from_millis(500);

/// The kubelet's log options.
#[derive(Debug, Default, PartialEq)]
struct Options {
    follow: bool,
    previous: bool,
    timestamps: bool,
    tail_lines: Option<u64>,
    limit_bytes: Option<u64>,
    since: Option<SystemTime>,
}

/// What is wrong with a query: 400 (does not decode) or 422 (invalid).
#[derive(Debug, PartialEq)]
enum QueryError {
    Decode,
    Invalid,
}

fn parse(query: Option<&str>, now: SystemTime) -> Result<Options, QueryError> {
    let mut o = Options::default();
    let mut since_seconds = None;
    let mut since_time = None;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let flag = || match v {
            "" | "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(QueryError::Decode),
        };
        let number = || v.parse::<i64>().map_err(|_| QueryError::Decode);
        match k {
            "follow" => o.follow = flag()?,
            "previous" => o.previous = flag()?,
            "timestamps" => o.timestamps = flag()?,
            "tailLines" | "tail" if v == "all" => o.tail_lines = None,
            "tailLines" | "tail" => {
                o.tail_lines = Some(u64::try_from(number()?).map_err(|_| QueryError::Invalid)?)
            }
            "limitBytes" => {
                let n = number()?;
                o.limit_bytes = Some(
                    u64::try_from(n)
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or(QueryError::Invalid)?,
                )
            }
            "sinceSeconds" => {
                let n = number()?;
                since_seconds = Some(
                    u64::try_from(n)
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or(QueryError::Invalid)?,
                )
            }
            "sinceTime" => {
                let v = v.replace("%3A", ":").replace("%3a", ":");
                let t =
                    time::OffsetDateTime::parse(&v, &time::format_description::well_known::Rfc3339)
                        .map_err(|_| QueryError::Decode)?;
                since_time = Some(SystemTime::from(t));
            }
            _ => {}
        }
    }
    o.since = match (since_seconds, since_time) {
        (Some(_), Some(_)) => return Err(QueryError::Invalid),
        (Some(s), None) => Some(
            now.checked_sub(Duration::from_secs(s))
                .unwrap_or(SystemTime::UNIX_EPOCH),
        ),
        (None, t) => t,
    };
    Ok(o)
}

/// The log lines of container `container` in one run, with their times.
fn lines(pod: &PodRecord, container: &str, image: &str, run: Run) -> Vec<(SystemTime, String)> {
    let mut out = vec![(
        run.started,
        format!(
            "kubemark: hollow container {container} started (image {image}); nothing runs in it, this log is simulated"
        ),
    )];
    out.extend(pod.log.lines().map(|l| (run.started, l.to_string())));
    if let Some((at, code)) = run.finished {
        out.push((at, exit_line(container, code)));
    }
    out
}

fn exit_line(container: &str, code: i32) -> String {
    format!("kubemark: hollow container {container} exited with code {code}")
}

/// `2006-01-02T15:04:05.000000000Z`, as the kubelet prefixes lines with `timestamps`.
fn timestamp(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

/// Formats `lines` with the options, spending from `budget` (limitBytes) as it goes.
fn render(lines: &[(SystemTime, String)], o: &Options, budget: &mut Option<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    for (at, line) in lines {
        if budget.is_some_and(|b| b == 0) {
            break;
        }
        let mut bytes = Vec::new();
        if o.timestamps {
            bytes.extend_from_slice(timestamp(*at).as_bytes());
            bytes.push(b' ');
        }
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        if let Some(b) = budget {
            let take = (*b).min(bytes.len() as u64) as usize;
            bytes.truncate(take);
            *b -= take as u64;
        }
        out.extend(bytes);
    }
    out
}

/// Answers `/containerLogs/NS/POD/CONTAINER?QUERY`.
pub(crate) async fn container_logs(
    node: &NodeServer,
    ns: &str,
    pod: &str,
    container: &str,
    query: Option<&str>,
) -> Response<Body> {
    let now = SystemTime::now();
    let o = match parse(query, now) {
        Ok(o) => o,
        Err(QueryError::Decode) => {
            return text(
                StatusCode::BAD_REQUEST,
                r#"{"message": "Unable to decode query."}"#,
            );
        }
        Err(QueryError::Invalid) => {
            return text(
                StatusCode::UNPROCESSABLE_ENTITY,
                r#"{"message": "Invalid request."}"#,
            );
        }
    };
    let Some(record) = node.ctx.pods.find(ns, pod) else {
        return text(
            StatusCode::NOT_FOUND,
            &format!("pod {pod:?} does not exist"),
        );
    };
    let Some(image) = record
        .containers
        .iter()
        .find(|c| &*c.name == container)
        .map(|c| c.image.to_string())
    else {
        let message = format!("container {container:?} not found in pod {pod:?}");
        return text(StatusCode::NOT_FOUND, &message);
    };
    let run = if o.previous {
        match record.previous_run() {
            Some(run) => run,
            None => {
                let message =
                    format!("previous terminated container {container:?} in pod {pod:?} not found");
                return text(StatusCode::BAD_REQUEST, &message);
            }
        }
    } else {
        match record.current {
            Some(run) => run,
            None => {
                let message = format!(
                    "container {container:?} in pod {pod:?} is waiting to start: ContainerCreating"
                );
                return text(StatusCode::BAD_REQUEST, &message);
            }
        }
    };
    let mut all = lines(&record, container, &image, run);
    if let Some(since) = o.since {
        all.retain(|(at, _)| *at >= since);
    }
    if let Some(n) = o.tail_lines {
        let skip = all
            .len()
            .saturating_sub(usize::try_from(n).unwrap_or(usize::MAX));
        all.drain(..skip);
    }
    let mut budget = o.limit_bytes;
    let first = render(&all, &o, &mut budget);
    let following = o.follow && !o.previous && run.finished.is_none() && budget != Some(0);
    if !following {
        return ok(super::full(first));
    }
    // Follow: the log grows by the exit line when the container exits; the stream ends then,
    // or when the pod is gone or its containers restarted.
    let (tx, rx) = futures::channel::mpsc::unbounded::<
        Result<http_body::Frame<Bytes>, std::convert::Infallible>,
    >();
    let _ = tx.unbounded_send(Ok(http_body::Frame::data(Bytes::from(first))));
    let pods = node.ctx.clone();
    let container = container.to_string();
    let (ns, pod) = (ns.to_string(), pod.to_string());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(FOLLOW_POLL).await;
            if tx.is_closed() {
                return;
            }
            let now_run = pods.pods.current_run(&ns, &pod);
            match now_run {
                Some(r) if r.started == run.started => {
                    if let Some((at, code)) = r.finished {
                        let line = [(at, exit_line(&container, code))];
                        let bytes = render(&line, &o, &mut budget);
                        let _ = tx.unbounded_send(Ok(http_body::Frame::data(Bytes::from(bytes))));
                        return;
                    }
                }
                _ => return,
            }
        }
    });
    ok(StreamBody::new(rx).boxed())
}

fn ok(body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_bad_ones_are_refused_as_the_kubelet_refuses_them() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let o = parse(
            Some("follow=true&tailLines=3&timestamps=true&sinceSeconds=10"),
            now,
        )
        .unwrap();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!(o.tail_lines, Some(3));
        assert_eq!(o.since, Some(now - Duration::from_secs(10)));
        assert_eq!(parse(Some("tailLines=-1"), now), Err(QueryError::Invalid));
        assert_eq!(parse(Some("limitBytes=0"), now), Err(QueryError::Invalid));
        assert_eq!(parse(Some("tailLines=x"), now), Err(QueryError::Decode));
        assert_eq!(
            parse(Some("sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z"), now),
            Err(QueryError::Invalid)
        );
        let t = parse(Some("sinceTime=1970-01-01T00%3A10%3A00Z"), now).unwrap();
        assert_eq!(
            t.since,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(600))
        );
    }

    #[test]
    fn lines_render_with_timestamps_and_a_byte_limit() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        let lines = vec![(t, "a".to_string()), (t, "bcd".to_string())];
        let o = Options {
            timestamps: true,
            ..Options::default()
        };
        let out = String::from_utf8(render(&lines, &o, &mut None)).unwrap();
        assert_eq!(
            out,
            "2023-11-14T22:13:20.000000005Z a\n2023-11-14T22:13:20.000000005Z bcd\n"
        );
        let mut budget = Some(4);
        let out = render(&lines, &Options::default(), &mut budget);
        assert_eq!(out, b"a\nbc");
        assert_eq!(budget, Some(0));
    }
}

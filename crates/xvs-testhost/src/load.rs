//! Load and probes from the client namespace: curl for single requests, wrk
//! for throughput and latency, with wrk's report parsed.

use std::time::Duration;

use crate::{cmd, netns::Netns, Error, Result};

/// One `GET url` with curl inside `ns` (a new connection; no proxy; 5 s
/// limit). Returns the body; fails unless curl exits 0 with a 2xx.
pub fn curl(ns: &Netns, url: &str) -> Result<String> {
    cmd::require_tool("curl", "curl")?;
    ns.exec(&[
        "curl",
        "-sS",
        "--fail",
        "--noproxy",
        "*",
        "--connect-timeout",
        "2",
        "--max-time",
        "5",
        url,
    ])
}

/// What wrk should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrkOptions {
    pub url: String,
    pub threads: u32,
    pub connections: u32,
    pub duration: Duration,
    /// Send `Connection: close`: every request on a new connection.
    pub close: bool,
    /// wrk's per-request timeout.
    pub timeout: Duration,
}

impl WrkOptions {
    /// 1 thread, 16 connections, 5 s, keep-alive, 2 s timeout.
    pub fn new(url: &str) -> Self {
        WrkOptions {
            url: url.into(),
            threads: 1,
            connections: 16,
            duration: Duration::from_secs(5),
            close: false,
            timeout: Duration::from_secs(2),
        }
    }

    /// The wrk command line (without the namespace wrapper).
    pub fn argv(&self) -> Vec<String> {
        let mut v = vec![
            "wrk".to_string(),
            "--latency".into(),
            "-t".into(),
            self.threads.to_string(),
            "-c".into(),
            self.connections.to_string(),
            "-d".into(),
            format!("{}s", self.duration.as_secs().max(1)),
            "--timeout".into(),
            format!("{}s", self.timeout.as_secs().max(1)),
        ];
        if self.close {
            v.push("-H".into());
            v.push("Connection: close".into());
        }
        v.push(self.url.clone());
        v
    }
}

/// wrk's report.
#[derive(Clone, Debug, PartialEq)]
pub struct WrkResult {
    pub requests: u64,
    /// Measured run time, seconds.
    pub seconds: f64,
    pub requests_per_sec: f64,
    /// Latency percentiles in microseconds (from `--latency`).
    pub p50_us: f64,
    pub p75_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    /// Socket errors: connect + read + write + timeout.
    pub socket_errors: u64,
    pub timeouts: u64,
    /// Non-2xx or 3xx responses.
    pub non_2xx: u64,
}

/// Runs wrk from `ns` and parses its report.
pub fn wrk(ns: &Netns, opts: &WrkOptions) -> Result<WrkResult> {
    cmd::require_tool("wrk", "wrk")?;
    let argv = opts.argv();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = ns.exec(&argv)?;
    parse_wrk(&out)
}

/// `170.00us`, `1.20ms`, `2.00s`, `1.00m` in microseconds.
fn parse_duration_us(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let mult = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(v * mult)
}

/// Parses wrk's (4.x) text report.
pub fn parse_wrk(text: &str) -> Result<WrkResult> {
    let err = |detail: &str| Error::Parse {
        what: "wrk output".into(),
        detail: detail.into(),
        text: text.into(),
    };
    let mut r = WrkResult {
        requests: 0,
        seconds: 0.0,
        requests_per_sec: 0.0,
        p50_us: f64::NAN,
        p75_us: f64::NAN,
        p90_us: f64::NAN,
        p99_us: f64::NAN,
        socket_errors: 0,
        timeouts: 0,
        non_2xx: 0,
    };
    let (mut have_req, mut have_rps) = (false, false);
    for line in text.lines() {
        let l = line.trim();
        let words: Vec<&str> = l.split_whitespace().collect();
        match words.as_slice() {
            [pct, v] if pct.ends_with('%') && !l.starts_with("Latency") => {
                let us = parse_duration_us(v).ok_or_else(|| err("bad latency percentile"))?;
                match *pct {
                    "50%" => r.p50_us = us,
                    "75%" => r.p75_us = us,
                    "90%" => r.p90_us = us,
                    "99%" => r.p99_us = us,
                    _ => {}
                }
            }
            [n, "requests", "in", t, ..] => {
                r.requests = n.parse().map_err(|_| err("bad request count"))?;
                let t = t.trim_end_matches(',');
                r.seconds = parse_duration_us(t).ok_or_else(|| err("bad run time"))? / 1e6;
                have_req = true;
            }
            ["Requests/sec:", v] => {
                r.requests_per_sec = v.parse().map_err(|_| err("bad Requests/sec"))?;
                have_rps = true;
            }
            ["Socket", "errors:", rest @ ..] => {
                // connect 0, read 0, write 0, timeout 0
                for pair in rest.join(" ").split(',') {
                    let mut it = pair.split_whitespace();
                    let (k, v) = (it.next(), it.next().and_then(|v| v.parse::<u64>().ok()));
                    if let (Some(k), Some(v)) = (k, v) {
                        r.socket_errors += v;
                        if k == "timeout" {
                            r.timeouts = v;
                        }
                    }
                }
            }
            ["Non-2xx", "or", "3xx", "responses:", v] => {
                r.non_2xx = v.parse().map_err(|_| err("bad Non-2xx count"))?;
            }
            _ => {}
        }
    }
    if !have_req || !have_rps {
        return Err(err("no `N requests in T` or `Requests/sec:` line"));
    }
    if r.requests > 0 && r.p50_us.is_nan() {
        return Err(err("no latency distribution (was --latency given?)"));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 5s test @ http://198.18.0.100:8001/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   331.05us  125.31us   5.18ms   91.07%
    Req/Sec    48.36k     1.53k   50.51k    78.00%
  Latency Distribution
     50%  310.00us
     75%  352.00us
     90%  420.00us
     99%    1.02ms
  240640 requests in 5.00s, 34.65MB read
  Socket errors: connect 0, read 12, write 0, timeout 3
  Non-2xx or 3xx responses: 2
Requests/sec:  48122.59
Transfer/sec:      6.93MB
";

    #[test]
    fn parses_a_wrk_report() {
        let r = parse_wrk(SAMPLE).unwrap();
        assert_eq!(r.requests, 240640);
        assert_eq!(r.seconds, 5.0);
        assert_eq!(r.requests_per_sec, 48122.59);
        assert_eq!(r.p50_us, 310.0);
        assert_eq!(r.p75_us, 352.0);
        assert_eq!(r.p90_us, 420.0);
        assert_eq!(r.p99_us, 1020.0);
        assert_eq!(r.socket_errors, 15);
        assert_eq!(r.timeouts, 3);
        assert_eq!(r.non_2xx, 2);
    }

    #[test]
    fn units_and_failures() {
        assert_eq!(parse_duration_us("2.50s"), Some(2.5e6));
        assert_eq!(parse_duration_us("1.00m"), Some(60e6));
        assert_eq!(parse_duration_us("7us"), Some(7.0));
        assert_eq!(parse_duration_us("7"), None);
        assert!(parse_wrk("unable to connect to 198.18.0.100:80 Connection refused").is_err());
        let no_latency = SAMPLE
            .lines()
            .filter(|l| {
                !l.trim_start().starts_with(|c: char| c.is_ascii_digit()) || l.contains("requests")
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(parse_wrk(&no_latency).is_err());
    }

    #[test]
    fn wrk_command_line() {
        let mut o = WrkOptions::new("http://198.18.0.100/");
        o.close = true;
        o.duration = Duration::from_secs(3);
        assert_eq!(
            o.argv().join(" "),
            "wrk --latency -t 1 -c 16 -d 3s --timeout 2s -H Connection: close http://198.18.0.100/"
        );
    }
}

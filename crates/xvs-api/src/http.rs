//! A small HTTP/1.1 codec: one request per connection, bodies sized by
//! `Content-Length`, no chunking, no keep-alive. Enough for a local control
//! API, and it keeps the daemon free of an async runtime.

use std::io::{self, BufRead, BufReader, Read, Write};

/// Largest request or response body accepted (a restore of 10,000 services
/// with 10 real servers each is about 8 MiB of JSON).
pub const MAX_BODY: usize = 256 << 20;

/// Largest header section accepted.
const MAX_HEAD: usize = 64 << 10;

/// A parsed request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path with its query string.
    pub target: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path without the query string.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The value of query parameter `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        let q = self.target.split_once('?')?.1;
        q.split('&').find_map(|kv| match kv.split_once('=') {
            Some((k, v)) if k == name => Some(v),
            None if kv == name => Some(""),
            _ => None,
        })
    }
}

/// A response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type: "application/json",
            body,
        }
    }
}

/// A message's start line, headers and body.
type Message = (String, Vec<(String, String)>, Vec<u8>);

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads the head (start line and headers), then the body.
fn read_message<R: Read>(r: &mut BufReader<R>) -> io::Result<Message> {
    let mut start = String::new();
    let mut head_len = 0;
    if r.read_line(&mut start)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    head_len += start.len();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("headers cut short"));
        }
        head_len += line.len();
        if head_len > MAX_HEAD {
            return Err(bad("headers too large"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (n, v) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header line '{line}'")))?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len = match headers.iter().find(|(n, _)| n == "content-length") {
        Some((_, v)) => v
            .parse::<usize>()
            .map_err(|_| bad(format!("bad Content-Length '{v}'")))?,
        None => 0,
    };
    if len > MAX_BODY {
        return Err(bad(format!("body of {len} bytes is too large")));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok((start.trim_end().to_string(), headers, body))
}

/// Reads one request.
pub fn read_request<R: Read>(r: R) -> io::Result<Request> {
    let mut r = BufReader::new(r);
    let (start, headers, body) = read_message(&mut r)?;
    let mut parts = start.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(format!("bad request line '{start}'")));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(bad(format!("unsupported protocol '{version}'")));
    }
    Ok(Request {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        body,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        422 => "Unprocessable Entity",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Writes a response and flushes it.
pub fn write_response<W: Write>(mut w: W, resp: &Response) -> io::Result<()> {
    write!(
        w,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len()
    )?;
    w.write_all(&resp.body)?;
    w.flush()
}

/// Writes a request and flushes it.
pub fn write_request<W: Write>(
    mut w: W,
    method: &str,
    target: &str,
    token: Option<&str>,
    body: &[u8],
) -> io::Result<()> {
    write!(
        w,
        "{method} {target} HTTP/1.1\r\nHost: xvsd\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    )?;
    if let Some(t) = token {
        write!(w, "Authorization: Bearer {t}\r\n")?;
    }
    w.write_all(b"\r\n")?;
    w.write_all(body)?;
    w.flush()
}

/// Reads a response: its status and body.
pub fn read_response<R: Read>(r: R) -> io::Result<(u16, Vec<u8>)> {
    let mut r = BufReader::new(r);
    let (start, _, body) = read_message(&mut r)?;
    let status = start
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line '{start}'")))?;
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip() {
        let mut buf = Vec::new();
        write_request(
            &mut buf,
            "POST",
            "/v1/commands?x=1",
            Some("t0k"),
            b"{\"a\":1}",
        )
        .unwrap();
        let req = read_request(&buf[..]).unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path(), "/v1/commands");
        assert_eq!(req.query("x"), Some("1"));
        assert_eq!(req.header("authorization"), Some("Bearer t0k"));
        assert_eq!(req.body, b"{\"a\":1}");
    }

    #[test]
    fn response_round_trip() {
        let mut buf = Vec::new();
        write_response(&mut buf, &Response::json(409, b"{}".to_vec())).unwrap();
        assert_eq!(read_response(&buf[..]).unwrap(), (409, b"{}".to_vec()));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for input in [
            &b""[..],
            b"GET\r\n\r\n",
            b"GET / SPDY/9\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort",
        ] {
            assert!(
                read_request(input).is_err(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}

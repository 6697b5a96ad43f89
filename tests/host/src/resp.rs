//! A small Redis client speaking RESP2 over one TCP connection: what the local host's
//! spin:redis needs (connect, `AUTH`, `SELECT`, one command at a time), no more.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Largest bulk string or array accepted in a reply (Redis's own proto-max-bulk-len
/// default is 512 MiB; Spin refuses results over 128 MiB anyway).
const MAX_BULK: usize = 512 << 20;
/// Deepest nesting of arrays read (redis-rs stops at 100 too).
const MAX_DEPTH: usize = 100;
/// How long connecting may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Nil,
    Status(String),
    Int(i64),
    Bulk(Vec<u8>),
    Array(Vec<Reply>),
    /// An error reply: its code (`ERR`, `WRONGTYPE`, ...) and the rest of the line.
    Error(String, Option<String>),
}

/// A failure below the protocol: connection refused, closed, or a malformed reply.
#[derive(Debug)]
pub struct IoFailure(pub String);

impl From<std::io::Error> for IoFailure {
    fn from(e: std::io::Error) -> Self {
        IoFailure(e.to_string())
    }
}

pub struct RespConnection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// Set once an I/O error left the stream in an unknown state.
    broken: bool,
}

impl RespConnection {
    pub async fn connect(host: &str, port: u16) -> Result<RespConnection, IoFailure> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
            .await
            .map_err(|_| IoFailure("connection timed out".into()))??;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        Ok(RespConnection {
            reader: BufReader::new(r),
            writer: w,
            broken: false,
        })
    }

    /// Sends one command and reads its reply. An error reply is `Ok(Reply::Error)`.
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Reply, IoFailure> {
        if self.broken {
            return Err(IoFailure(
                "broken pipe: the connection failed earlier".into(),
            ));
        }
        let result = async {
            self.writer.write_all(&encode(args)).await?;
            read_reply(&mut self.reader, 0).await
        }
        .await;
        if result.is_err() {
            self.broken = true;
        }
        result
    }
}

/// A command as a RESP array of bulk strings.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

async fn read_line<R: AsyncBufReadExt + Unpin>(r: &mut R) -> Result<String, IoFailure> {
    let mut line = Vec::new();
    let n = r.read_until(b'\n', &mut line).await?;
    if n == 0 {
        return Err(IoFailure("connection closed by the server".into()));
    }
    if !line.ends_with(b"\r\n") {
        return Err(IoFailure("reply line without CRLF".into()));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| IoFailure("reply line is not UTF-8".into()))
}

fn length(text: &str) -> Result<Option<usize>, IoFailure> {
    let n: i64 = text
        .parse()
        .map_err(|_| IoFailure(format!("bad length {text:?} in reply")))?;
    match n {
        -1 => Ok(None),
        n if n < 0 || n as usize > MAX_BULK => {
            Err(IoFailure(format!("length {n} out of range in reply")))
        }
        n => Ok(Some(n as usize)),
    }
}

async fn read_reply<R: AsyncBufReadExt + Unpin + Send>(
    r: &mut R,
    depth: usize,
) -> Result<Reply, IoFailure> {
    if depth > MAX_DEPTH {
        return Err(IoFailure("reply nested too deeply".into()));
    }
    let line = read_line(r).await?;
    let (kind, rest) = line.split_at(line.len().min(1));
    match kind {
        "+" => Ok(Reply::Status(rest.to_owned())),
        "-" => {
            let mut parts = rest.splitn(2, ' ');
            let code = parts.next().unwrap_or_default().to_owned();
            Ok(Reply::Error(code, parts.next().map(str::to_owned)))
        }
        ":" => rest
            .parse()
            .map(Reply::Int)
            .map_err(|_| IoFailure(format!("bad integer {rest:?} in reply"))),
        "$" => match length(rest)? {
            None => Ok(Reply::Nil),
            Some(n) => {
                let mut buf = vec![0; n + 2];
                r.read_exact(&mut buf).await?;
                if !buf.ends_with(b"\r\n") {
                    return Err(IoFailure("bulk string without CRLF".into()));
                }
                buf.truncate(n);
                Ok(Reply::Bulk(buf))
            }
        },
        "*" => match length(rest)? {
            None => Ok(Reply::Nil),
            Some(n) => {
                let mut items = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    items.push(Box::pin(read_reply(r, depth + 1)).await?);
                }
                Ok(Reply::Array(items))
            }
        },
        other => Err(IoFailure(format!("unknown reply type {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> Result<Reply, IoFailure> {
        let mut r = BufReader::new(bytes);
        read_reply(&mut r, 0).await
    }

    #[tokio::test]
    async fn reads_every_reply_type() {
        assert_eq!(parse(b"+OK\r\n").await.unwrap(), Reply::Status("OK".into()));
        assert_eq!(parse(b":-42\r\n").await.unwrap(), Reply::Int(-42));
        assert_eq!(parse(b"$-1\r\n").await.unwrap(), Reply::Nil);
        assert_eq!(parse(b"*-1\r\n").await.unwrap(), Reply::Nil);
        assert_eq!(
            parse(b"$4\r\na\r\nb\r\n").await.unwrap(),
            Reply::Bulk(b"a\r\nb".to_vec())
        );
        assert_eq!(
            parse(b"*3\r\n$1\r\nx\r\n$-1\r\n*1\r\n:1\r\n")
                .await
                .unwrap(),
            Reply::Array(vec![
                Reply::Bulk(b"x".to_vec()),
                Reply::Nil,
                Reply::Array(vec![Reply::Int(1)])
            ])
        );
        assert_eq!(
            parse(b"-WRONGTYPE Operation against a key\r\n")
                .await
                .unwrap(),
            Reply::Error("WRONGTYPE".into(), Some("Operation against a key".into()))
        );
        assert!(parse(b"$5\r\nab\r\n").await.is_err());
        assert!(parse(b"?\r\n").await.is_err());
        assert!(parse(b"").await.is_err());
    }

    #[test]
    fn encodes_binary_arguments() {
        assert_eq!(
            encode(&[b"SET", b"k", b"\r\n\0"]),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n\r\n\0\r\n".to_vec()
        );
    }
}

//! Just enough RESP (the Redis protocol) over a plain `TcpStream` for the baseline: commands
//! out as arrays of bulk strings, replies in.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;

use anyhow::{Context as _, Result, bail};

/// A reply.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    Simple(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

/// One connection to a redis-server.
pub(crate) struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    out: Vec<u8>,
}

impl Conn {
    pub(crate) fn connect(port: u16) -> Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .with_context(|| format!("connecting to redis-server on port {port}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            out: Vec::new(),
        })
    }

    /// Sends one command (without waiting for its reply).
    pub(crate) fn send(&mut self, args: &[&[u8]]) -> Result<()> {
        self.out.clear();
        self.out
            .extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            self.out
                .extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            self.out.extend_from_slice(a);
            self.out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&self.out).context("writing to redis")
    }

    /// Sends one command and reads its reply.
    pub(crate) fn call(&mut self, args: &[&[u8]]) -> Result<Reply> {
        self.send(args)?;
        self.read()
    }

    /// Reads one reply; a RESP error is an `Err`.
    pub(crate) fn read(&mut self) -> Result<Reply> {
        let mut line = Vec::new();
        self.reader
            .read_until(b'\n', &mut line)
            .context("reading from redis")?;
        let Some(body) = line.strip_suffix(b"\r\n") else {
            bail!("redis closed the connection");
        };
        let (kind, rest) = body.split_first().context("an empty redis reply")?;
        let text = std::str::from_utf8(rest).context("a redis reply line")?;
        let len = || -> Result<i64> { text.parse().context("a redis length") };
        Ok(match kind {
            b'+' => Reply::Simple(text.to_owned()),
            b'-' => bail!("redis: {text}"),
            b':' => Reply::Int(len()?),
            b'$' => match usize::try_from(len()?) {
                Err(_) => Reply::Bulk(None),
                Ok(n) => {
                    let mut data = vec![0; n + 2];
                    self.reader.read_exact(&mut data)?;
                    data.truncate(n);
                    Reply::Bulk(Some(data))
                }
            },
            b'*' => match usize::try_from(len()?) {
                Err(_) => Reply::Array(None),
                Ok(n) => Reply::Array(Some((0..n).map(|_| self.read()).collect::<Result<_>>()?)),
            },
            other => bail!("a redis reply of unknown type {:?}", char::from(*other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn replies_parse() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0; 64];
            let n = s.read(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
            s.write_all(b"$3\r\nabc\r\n$-1\r\n+OK\r\n:7\r\n*2\r\n$1\r\na\r\n:1\r\n-ERR no\r\n")
                .unwrap();
        });
        let mut c = Conn::connect(port).unwrap();
        assert_eq!(
            c.call(&[b"GET", b"k"]).unwrap(),
            Reply::Bulk(Some(b"abc".to_vec()))
        );
        assert_eq!(c.read().unwrap(), Reply::Bulk(None));
        assert_eq!(c.read().unwrap(), Reply::Simple("OK".to_owned()));
        assert_eq!(c.read().unwrap(), Reply::Int(7));
        assert_eq!(
            c.read().unwrap(),
            Reply::Array(Some(vec![Reply::Bulk(Some(b"a".to_vec())), Reply::Int(1)]))
        );
        assert!(c.read().unwrap_err().to_string().contains("ERR no"));
        server.join().unwrap();
    }
}

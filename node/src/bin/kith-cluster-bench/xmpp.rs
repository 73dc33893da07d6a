//! The smallest XMPP client the Prosody load needs: plain TCP on
//! loopback, in-band registration (XEP-0077), SASL PLAIN, resource
//! binding, and stream management (XEP-0198), whose `<r/>`/`<a h=…/>`
//! round trip is the acknowledgement: Prosody answers `<r/>` only after
//! it has handled every stanza sent before it (routed, and archived by
//! `mod_mam` in SQLite), in order, on the session's one thread.

use super::http::base64;
use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The XMPP domain the benchmark's Prosody serves.
pub const DOMAIN: &str = "localhost";
/// Bytes of one element the client accepts before calling the server broken.
const ELEMENT_BYTES_MAX: usize = 1 << 20;

/// One logged-in session with stream management on.
pub struct Session {
    tcp: TcpStream,
    buf: Vec<u8>,
    /// Stanzas received since stream management was enabled (the `h` the
    /// server asks for with `<r/>`).
    handled: u64,
    managed: bool,
}

impl Session {
    /// Registers `user` (password "bench"), logs in on `port` and enables
    /// stream management. Sends no presence.
    pub async fn register_and_login(port: u16, user: &str) -> Result<Session> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.context("connecting to prosody")?;
        tcp.set_nodelay(true)?;
        let mut s = Session { tcp, buf: Vec::new(), handled: 0, managed: false };
        s.open_stream().await?;
        s.send(&format!(
            "<iq type='set' id='reg'><query xmlns='jabber:iq:register'>\
             <username>{user}</username><password>bench</password></query></iq>"
        ))
        .await?;
        s.expect_result("reg").await.with_context(|| format!("registering {user}"))?;
        let plain = base64(format!("\0{user}\0bench").as_bytes());
        s.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>"
        ))
        .await?;
        let answer = s.element().await?;
        if !answer.starts_with("<success") {
            bail!("logging in {user}: {answer}");
        }
        s.open_stream().await?;
        s.send(
            "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>bench</resource></bind></iq>",
        )
        .await?;
        s.expect_result("bind").await.context("binding a resource")?;
        s.send("<enable xmlns='urn:xmpp:sm:3'/>").await?;
        loop {
            let e = s.element().await?;
            if e.starts_with("<enabled") {
                break;
            }
            if e.starts_with("<failed") {
                bail!("stream management refused: {e}");
            }
        }
        s.managed = true;
        Ok(s)
    }

    async fn open_stream(&mut self) -> Result<()> {
        self.send(&format!(
            "<?xml version='1.0'?><stream:stream to='{DOMAIN}' xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
        ))
        .await?;
        loop {
            if self.element().await?.starts_with("<stream:features") {
                return Ok(());
            }
        }
    }

    async fn expect_result(&mut self, id: &str) -> Result<()> {
        let wanted = format!("id='{id}'");
        loop {
            let e = self.element().await?;
            if e.starts_with("<iq") && e.contains(&wanted) {
                if e.contains("type='result'") {
                    return Ok(());
                }
                bail!("the server answered {e}");
            }
        }
    }

    /// Writes raw XML.
    pub async fn send(&mut self, xml: &str) -> Result<()> {
        self.tcp.write_all(xml.as_bytes()).await.context("writing to prosody")
    }

    /// Sends `xml` followed by `<r/>`, and reads (passing over what else
    /// arrives) until the server's `<a/>`.
    pub async fn send_acked(&mut self, xml: &str) -> Result<()> {
        self.send(&format!("{xml}<r xmlns='urn:xmpp:sm:3'/>")).await?;
        while !self.element().await?.starts_with("<a ") {}
        Ok(())
    }

    /// The next top-level element of the server's stream (the stream's
    /// opening tag counts as one). Answers the server's `<r/>` itself.
    pub async fn element(&mut self) -> Result<String> {
        loop {
            if let Some(end) = element_end(&self.buf) {
                let bytes: Vec<u8> = self.buf.drain(..end).collect();
                let e = String::from_utf8(bytes).context("prosody sent invalid UTF-8")?;
                let e = e.trim_start().to_string();
                if self.managed {
                    if e.starts_with("<r ") || e.starts_with("<r/") {
                        let h = self.handled;
                        self.send(&format!("<a xmlns='urn:xmpp:sm:3' h='{h}'/>")).await?;
                        continue;
                    }
                    if ["<message", "<presence", "<iq"].iter().any(|p| e.starts_with(p)) {
                        self.handled += 1;
                    }
                }
                if e.starts_with("</stream:stream") || e.starts_with("<stream:error") {
                    bail!("prosody closed the stream: {e}");
                }
                return Ok(e);
            }
            if self.buf.len() > ELEMENT_BYTES_MAX {
                bail!("prosody sent an element over {ELEMENT_BYTES_MAX} bytes");
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.tcp.read(&mut chunk).await.context("reading from prosody")?;
            if n == 0 {
                bail!("prosody closed the connection");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Where the first complete top-level element of `buf` ends, if it is all
/// there. Top level means a child of the stream: the `<stream:stream>`
/// opening tag and an XML declaration are elements of their own. Prosody
/// escapes `<` and `>` in text and attribute values, so tags are found by
/// their brackets alone.
fn element_end(buf: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < buf.len() {
        if buf[i] != b'<' {
            i += 1;
            continue;
        }
        let close = buf[i..].iter().position(|&b| b == b'>')?;
        let tag = &buf[i..i + close + 1];
        i += close + 1;
        if tag.starts_with(b"<?") || tag.starts_with(b"<stream:stream") {
            return Some(i);
        }
        if tag.starts_with(b"</") {
            if depth == 0 {
                // Only the stream's own closing tag closes at top level.
                return Some(i);
            }
            depth -= 1;
        } else if !tag.ends_with(b"/>") {
            depth += 1;
        }
        if depth == 0 {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::element_end;

    #[test]
    fn elements_are_split_at_top_level_only() {
        let s = b"<?xml version='1.0'?><stream:stream a='b'><a h='1'/><message><body>x &gt; y</body></message><r";
        let first = element_end(s).unwrap();
        assert_eq!(&s[..first], b"<?xml version='1.0'?>");
        let rest = &s[first..];
        let open = element_end(rest).unwrap();
        assert_eq!(&rest[..open], b"<stream:stream a='b'>");
        let rest = &rest[open..];
        let a = element_end(rest).unwrap();
        assert_eq!(&rest[..a], b"<a h='1'/>");
        let rest = &rest[a..];
        let m = element_end(rest).unwrap();
        assert_eq!(&rest[..m], b"<message><body>x &gt; y</body></message>");
        assert_eq!(element_end(&rest[m..]), None, "an unfinished tag waits");
        assert_eq!(element_end(b"<message><body>x</bo"), None);
    }
}

//! The tokio limit: a raw tokio (current-thread) echo server that answers each framed
//! strict-binary call the way `ringsoa-perf echo-server` does — the call's bytes with
//! the message type set to REPLY and the first argument's field id set to 0 (the
//! result's `success`) — and does nothing else.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9191".into());
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?
        .block_on(async {
            let listener = TcpListener::bind(&addr).await?;
            loop {
                let (stream, _) = listener.accept().await?;
                stream.set_nodelay(true)?;
                tokio::spawn(serve(stream));
            }
        })
}

/// Turns the framed call at the start of `frame` into its reply, in place; `None` if
/// `frame` does not hold a whole frame yet.
fn reply_in_place(frame: &mut [u8]) -> Option<usize> {
    let len = u32::from_be_bytes(frame.get(..4)?.try_into().ok()?) as usize;
    let whole = frame.get_mut(..4 + len)?;
    let name_len = u32::from_be_bytes(whole.get(8..12)?.try_into().ok()?) as usize;
    let args = 12 + name_len + 4;
    whole[7] = 2; // REPLY
    if *whole.get(args)? != 0 {
        whole[args + 1] = 0;
        whole[args + 2] = 0;
    }
    Some(4 + len)
}

async fn serve(mut stream: TcpStream) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    loop {
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut done = 0;
        while let Some(n) = reply_in_place(&mut buf[done..]) {
            done += n;
        }
        if done > 0 {
            let out = buf.split_to(done);
            if stream.write_all(&out).await.is_err() {
                return;
            }
        }
    }
}

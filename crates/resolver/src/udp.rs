//! The batched UDP worker: `recvmmsg` takes up to `batch` datagrams per syscall (blocking only
//! for the first, `MSG_WAITFORONE`) and the answers go out with one `sendmmsg`.
//!
//! Why: on loopback, a cache hit is mostly kernel time, and a good part of that is the fixed cost
//! of two syscalls per packet. Under load, batching amortises it; when traffic is light the
//! batch is simply one packet. Measured in docs/performance.md.

use crate::server::{Core, Outcome, Peer, Scratch};
use dnsight_model::Transport;
use socket2::SockAddr;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

const BUF: usize = 4096;

pub fn worker(
    core: Arc<Core>,
    sock: Arc<UdpSocket>,
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    rt: tokio::runtime::Handle,
    batch: usize,
) {
    let n = batch.clamp(1, 64);
    let fd = sock.as_raw_fd();
    let mut bufs = vec![[0u8; BUF]; n];
    let mut addrs: Vec<libc::sockaddr_storage> =
        vec![unsafe { MaybeUninit::zeroed().assume_init() }; n];
    let mut iovs: Vec<libc::iovec> = Vec::with_capacity(n);
    let mut msgs: Vec<libc::mmsghdr> = Vec::with_capacity(n);
    let mut outs: Vec<Vec<u8>> = (0..n).map(|_| Vec::with_capacity(512)).collect();
    let mut out_addrs: Vec<SockAddr> = Vec::with_capacity(n);
    let mut out_iovs: Vec<libc::iovec> = Vec::with_capacity(n);
    let mut out_msgs: Vec<libc::mmsghdr> = Vec::with_capacity(n);
    let mut s = Scratch::default();
    while !stop.load(Ordering::Relaxed) {
        iovs.clear();
        msgs.clear();
        for b in bufs.iter_mut() {
            iovs.push(libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: BUF,
            });
        }
        for i in 0..n {
            let mut h: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
            h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
            msgs.push(libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            });
        }
        // SAFETY: every msghdr points into buffers that outlive the call and are sized as declared.
        let got = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                n as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if got <= 0 {
            continue; // timeout (SO_RCVTIMEO), EINTR, or an error: check `stop` and go again
        }
        let now = Instant::now();
        out_addrs.clear();
        let mut used = 0;
        for i in 0..got as usize {
            let len = msgs[i].msg_len as usize;
            let trunc = msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let Some(src) = to_socket_addr(&addrs[i]) else {
                continue;
            };
            let peer = Peer {
                client: src,
                server: local,
                transport: Transport::Udp,
            };
            let query = &bufs[i][..len.min(BUF)];
            if trunc {
                // larger than any query we accept: count it like other oversized garbage
                core.stats.queries.fetch_add(1, Ordering::Relaxed);
                core.stats.garbage.fetch_add(1, Ordering::Relaxed);
                core.stats.garbage_question.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            match core.handle(query, &peer, &mut s, now) {
                Outcome::Reply => {
                    std::mem::swap(&mut outs[used], &mut s.out);
                    out_addrs.push(SockAddr::from(src));
                    used += 1;
                }
                Outcome::Drop => {}
                Outcome::Miss(q) => {
                    let query = query.to_vec();
                    let key = s.key.clone();
                    let (core, sock) = (core.clone(), sock.clone());
                    rt.spawn(async move {
                        let out = core.resolve(&query, &q, &key, &peer, now).await;
                        let _ = sock.send_to(&out, src);
                    });
                }
            }
        }
        if used == 0 {
            continue;
        }
        out_iovs.clear();
        out_msgs.clear();
        for o in outs.iter_mut().take(used) {
            out_iovs.push(libc::iovec {
                iov_base: o.as_mut_ptr().cast(),
                iov_len: o.len(),
            });
        }
        for i in 0..used {
            let mut h: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
            h.msg_name = out_addrs[i].as_ptr() as *mut libc::c_void;
            h.msg_namelen = out_addrs[i].len();
            h.msg_iov = &mut out_iovs[i];
            h.msg_iovlen = 1;
            out_msgs.push(libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            });
        }
        let mut sent = 0usize;
        while sent < used {
            // SAFETY: as above; the answers and addresses live until after the call.
            let r = unsafe {
                libc::sendmmsg(fd, out_msgs[sent..].as_mut_ptr(), (used - sent) as u32, 0)
            };
            if r <= 0 {
                break; // e.g. the client's port is gone; UDP gives no guarantee anyway
            }
            sent += r as usize;
        }
    }
}

/// Reads the address the kernel wrote into a `sockaddr_storage`.
fn to_socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in (storage is larger and aligned).
            let a = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::from((
                u32::from_be(a.sin_addr.s_addr).to_be_bytes(),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

//! Running the datapath on crafted packets with `BPF_PROG_TEST_RUN`: the differential tests and
//! the benchmarks use this to drive the real kernel programs without a network.

use std::net::IpAddr;
use std::time::Duration;

use aya::programs::{SchedClassifier, TestRun, TestRunOptions};

/// The TC verdicts the programs return.
pub const TC_ACT_OK: u32 = 0;
pub const TC_ACT_SHOT: u32 = 2;

/// A packet to craft: Ethernet + IPv4/IPv6 + TCP/UDP/SCTP/ICMP/ICMPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub sport: u16,
    /// Destination port; for ICMP the type (code 0) and `sport` is the echo identifier.
    pub dport: u16,
    /// TCP flags byte.
    pub tcp_flags: u8,
}

impl Packet {
    pub fn tcp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, flags: u8) -> Packet {
        Packet {
            src,
            dst,
            protocol: 6,
            sport,
            dport,
            tcp_flags: flags,
        }
    }

    /// The frame bytes. Checksums are left zero: the datapath does not verify them.
    pub fn bytes(&self) -> Vec<u8> {
        let l4: Vec<u8> = match self.protocol {
            6 => {
                let mut h = vec![0u8; 20];
                h[0..2].copy_from_slice(&self.sport.to_be_bytes());
                h[2..4].copy_from_slice(&self.dport.to_be_bytes());
                h[12] = 5 << 4;
                h[13] = self.tcp_flags;
                h[14..16].copy_from_slice(&64240u16.to_be_bytes());
                h
            }
            17 | 132 => {
                let mut h = vec![0u8; 8];
                h[0..2].copy_from_slice(&self.sport.to_be_bytes());
                h[2..4].copy_from_slice(&self.dport.to_be_bytes());
                if self.protocol == 17 {
                    h[4..6].copy_from_slice(&8u16.to_be_bytes());
                }
                h
            }
            1 | 58 => {
                let mut h = vec![0u8; 8];
                h[0] = self.dport as u8;
                h[4..6].copy_from_slice(&self.sport.to_be_bytes());
                h[6..8].copy_from_slice(&1u16.to_be_bytes());
                let error = match self.protocol {
                    1 => matches!(self.dport, 3 | 4 | 11 | 12),
                    _ => (1..=4).contains(&self.dport),
                };
                if error {
                    // An error quotes the packet it is about: here a UDP datagram the
                    // destination sent to the source.
                    let quoted = Packet {
                        src: self.dst,
                        dst: self.src,
                        protocol: 17,
                        sport: self.sport,
                        dport: 53,
                        tcp_flags: 0,
                    };
                    h.extend_from_slice(&quoted.bytes()[14..]);
                }
                h
            }
            _ => vec![0u8; 8],
        };
        frame(self.src, self.dst, self.protocol, &l4)
    }
}

/// A TCP segment carrying `payload`, with sequence and acknowledgement numbers (the HTTP
/// datapath follows the byte stream by them).
#[allow(clippy::too_many_arguments)]
pub fn tcp_segment(
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..8].copy_from_slice(&seq.to_be_bytes());
    h[8..12].copy_from_slice(&ack.to_be_bytes());
    h[12] = 5 << 4;
    h[13] = flags;
    h[14..16].copy_from_slice(&64240u16.to_be_bytes());
    h.extend_from_slice(payload);
    frame(src, dst, 6, &h)
}

/// Ethernet + IP header (checksum zero) in front of `l4`.
fn frame(src: IpAddr, dst: IpAddr, protocol: u8, l4: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8; 14];
    frame[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
            let mut ip = vec![0u8; 20];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
            ip[8] = 64;
            ip[9] = protocol;
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            frame.extend(ip);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            frame[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
            let mut ip = vec![0u8; 40];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
            ip[6] = protocol;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
            frame.extend(ip);
        }
        _ => panic!("packet mixes IPv4 and IPv6 addresses: {src} -> {dst}"),
    }
    frame.extend_from_slice(l4);
    frame
}

/// Size of `struct __sk_buff` passed as the test-run context.
const SKB_CTX_LEN: usize = 192;
const SKB_IFINDEX_OFFSET: usize = 40;

/// Runs a program on one frame as if it arrived on `ifindex` (which must exist in the calling
/// thread's network namespace; 0 leaves the kernel's default, the loopback device).
/// Returns the program's return value and the kernel-measured time per run.
pub fn run(
    prog: &mut SchedClassifier,
    frame: &[u8],
    ifindex: u32,
    repeat: u32,
) -> Result<(u32, Duration), aya::programs::ProgramError> {
    let mut ctx = [0u8; SKB_CTX_LEN];
    ctx[SKB_IFINDEX_OFFSET..SKB_IFINDEX_OFFSET + 4].copy_from_slice(&ifindex.to_ne_bytes());
    let opts = TestRunOptions {
        data_in: Some(frame),
        ctx_in: (ifindex > 1).then_some(&ctx[..]),
        repeat: repeat.max(1),
        ..TestRunOptions::default()
    };
    let r = prog.test_run(opts)?;
    Ok((r.return_value, r.duration))
}
